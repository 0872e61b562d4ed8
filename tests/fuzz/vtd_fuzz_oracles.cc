// vtd fuzz target: the end-of-input oracle (with caching-mode, after a
// global IOTLB invalidation, every MAP/UNMAP recorder equals a fresh walk
// of its device's tables) and the observable end state for the replay
// trace.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/vtd_fuzz_program.h"

namespace viommu::vtd::fuzz {

void Program::TraceEndState() {
  viommu::fuzz::TraceHash& t = viommu::fuzz::Trace();
  for (const MappingRecorder& r : recorders_) {
    t.Add64(r.mappings().size());
    for (const auto& [iova, mapping] : r.mappings()) {
      t.Add64(iova);
      t.Add64(mapping.last);
      t.Add64(mapping.gpa);
      t.Add64(mapping.perm);
    }
  }
  for (uint16_t off = 0; off < kRegBlockSize; off += 8)
    t.Add64(ReadReg(off, 8));
  for (uint8_t devfn : kDevfns) {
    for (uint16_t off = 0; off < 256; off += 4) {
      t.Add64(m_->pci_bus().ConfigRead(devfn, off, 4));
    }
  }
  t.Add64(m_->clock().now_ns());
  for (const DevIotlbRecorder& r : dev_recorders_) t.Add64(r.total());
  const std::optional<uint16_t> sources[3] = {kEduDevfn, kTestdevDevfn,
                                              std::nullopt};
  for (const std::optional<uint16_t>& rid : sources) {
    t.Add64(m_->msi().Count(rid));
    if (std::optional<hw::MsiMessage> last = m_->msi().Last(rid)) {
      t.Add64(last->address);
      t.Add64(last->data);
    }
  }
  static uint8_t page[kPage];
  for (uint64_t gpa = 0; gpa < m_->ram_size(); gpa += kPage) {
    (void)m_->system_as().Read(gpa, page, kPage);
    t.Add(page, kPage);
  }
}

void Program::FinalCheck() {
  if (ir_checked_ > 0 && std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
    std::fprintf(stderr, "vtd_fuzzer: %d interrupt actions checked\n",
                 ir_checked_);
  }
  if (dev_iotlb_checked_ > 0 && std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
    std::fprintf(stderr, "vtd_fuzzer: %d device-IOTLB submissions checked\n",
                 dev_iotlb_checked_);
  }
  if (scalable_ && m_->intel_iommu()->root_scalable()) {
    SmFinalCheck();
    if (std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
      std::fprintf(stderr,
                   "vtd_fuzzer: %d scalable-mode translations checked\n",
                   sm_checked_);
    }
    return;
  }
  if (!handles_[0].registered() && !handles_[1].registered()) return;
  if (!SyncBudgetOk() || !GlobalInvalidate()) return;
  IntelIommu* iommu = m_->intel_iommu();
  for (int i = 0; i < 2; ++i) {
    if (!handles_[i].registered()) continue;
    const auto& recorded = recorders_[i].mappings();
    if (!iommu->translation_enabled()) {
      if (!recorded.empty()) Fail("mappings with translation off", i, 0);
      continue;
    }
    ContextLookup ctx =
        LookupContext(mem_, cfg_, iommu->root_table(), 0, kDevfns[i]);
    if (!ctx.ok()) {
      // Only a non-present context drops the mappings (QEMU 7.2).
      if (*ctx.fault == FaultReason::kContextEntryP && !recorded.empty()) {
        Fail("mappings with a non-present context", i, recorded.size());
      }
      continue;
    }
    if (ctx.entry.translation_type() == ContextEntry::kTtPassThrough) {
      if (!recorded.empty()) Fail("mappings with pass-through", i, 0);
      continue;
    }
    CheckRecorderMatchesWalk(recorders_[i], mem_, cfg_, ctx.entry);
    if (std::getenv("VTD_FUZZER_VERBOSE") != nullptr) {
      std::fprintf(stderr, "vtd_fuzzer: %02x.%x checked, %zu mappings\n",
                   kDevfns[i] >> 3, kDevfns[i] & 7, recorded.size());
    }
  }
}

}  // namespace viommu::vtd::fuzz
