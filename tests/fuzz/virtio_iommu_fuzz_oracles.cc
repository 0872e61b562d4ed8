// virtio_iommu fuzz target: the oracles. After each batch every answer,
// each watched endpoint's recorded mappings, the vfio-pci container and
// the fault records must be what the Shadow predicts.
#include "tests/fuzz/virtio_iommu_fuzz_program.h"

namespace viommu::fuzz::virtio_iommu_target {

// Notify, then check every answer against the shadow, and the notifiers.
void Program::Kick() {
  if (!ready_) return;
  const uint64_t errors = ContainerErrors();
  Mmio(kNotify, 0, 2);
  struct Want {
    uint16_t head;
    uint32_t used_len;
    uint32_t status_at;
    uint8_t status;
    const Pending* p;
  };
  std::vector<Want> want;
  for (const Pending& p : batch_) {
    if (broken_) break;
    if (p.malformed) {
      broken_ = true;
      break;
    }
    uint8_t req[vi::kProbeReqSize] = {};
    const size_t n = std::min<size_t>(p.out.size(), vi::kProbeReqSize);
    std::memcpy(req, p.out.data(), n);
    Want w{p.head, 0, 0, 0, &p};
    w.status = shadow_.Request(req, n, p.in_size, &w.used_len, &w.status_at);
    want.push_back(w);
  }
  const uint16_t used = Get16(kReqUsed + 2);
  Note(used);
  if (static_cast<uint16_t>(used - used_seen_) != want.size()) {
    Fail("used entries other than predicted",
         static_cast<uint16_t>(used - used_seen_), want.size());
  }
  for (const Want& w : want) {
    const uint64_t e = kReqUsed + 4 + 8u * (used_seen_ % qsize_);
    ++used_seen_;
    const uint32_t id = Get32(e), len = Get32(e + 4);
    if (id != w.head) Fail("used id is not the chain's head", id, w.head);
    if (len != w.used_len) Fail("used length", len, w.used_len);
    // The reply, gathered from the writable segments.
    std::vector<uint8_t> reply(w.p->in_size);
    RamRead(w.p->in_addr[0], reply.data(), w.p->in_len[0]);
    if (w.p->in_len[1] != 0) {
      RamRead(w.p->in_addr[1], reply.data() + w.p->in_len[0], w.p->in_len[1]);
    }
    const uint8_t got = reply[w.status_at];
    Note(got);
    if (Verbose()) {
      std::fprintf(stderr,
                   "virtio_iommu_fuzzer: type %u (%zu bytes, in %" PRIu64
                   ") -> status %u used %u\n",
                   w.p->out[0], w.p->out.size(), w.p->in_size, got, len);
    }
    if (got != w.status) {
      std::fprintf(stderr,
                   "request type %u, %zu readable bytes, in %" PRIu64 "\n",
                   w.p->out[0], w.p->out.size(), w.p->in_size);
      Fail("request status", got, w.status);
    }
    if (w.p->out[0] == vi::kReqProbe && w.used_len == vi::kProbeReplySize) {
      // Properties: one RESV_MEM MSI for every known endpoint, the host's
      // holes as RESERVED for the passthrough one, zeros after.
      uint8_t props[vi::kProbeSize] = {};
      if (w.status == vi::kStatusOk) {
        uint8_t req[vi::kProbeReqSize] = {};
        std::memcpy(req, w.p->out.data(),
                    std::min<size_t>(w.p->out.size(), sizeof req));
        const uint32_t ep =
            req[4] | req[5] << 8 | req[6] << 16 | uint32_t{req[7]} << 24;
        const std::vector<uint8_t> expected =
            shadow_.ProbeProperties(static_cast<uint16_t>(ep));
        if (expected.size() > sizeof props) Fail("PROBE model overflow", ep, 0);
        std::memcpy(props, expected.data(), expected.size());
      }
      if (std::memcmp(props, reply.data(), sizeof props) != 0) {
        Fail("PROBE properties", w.status, 0);
      }
    }
  }
  const uint8_t status = Status();
  Note(status);
  if (static_cast<bool>(status & vio::kStatusNeedsReset) != broken_) {
    Fail("NEEDS_RESET other than predicted", status, broken_);
  }
  batch_.clear();
  desc_used_ = 0;
  if (ContainerErrors() != errors) shadow_.ExcuseAll(kVfioDevfn);
  CheckMappings();
}

void Program::CheckMappings() {
  for (size_t i = 0; i < kWatched.size(); ++i) {
    const auto& blocks = mach_->recorder(i).blocks();
    const std::vector<Run> got =
        Merge(blocks.begin(), blocks.end(), [](const auto& kv) {
          return Run{kv.first, kv.second.last, kv.second.phys, kv.second.perm};
        });
    const auto expected = shadow_.Expected(kWatched[i]);
    const std::vector<Run> want =
        Merge(expected.begin(), expected.end(), [](const auto& kv) {
          return Run{kv.first, kv.second.last, kv.second.phys, kv.second.flags};
        });
    if (got != want) {
      for (const Run& r : got)
        std::fprintf(stderr,
                     "  recorded 0x%" PRIx64 "-0x%" PRIx64 " -> 0x%" PRIx64
                     " perm %u\n",
                     r.first, r.last, r.phys, r.perm);
      for (const Run& r : want)
        std::fprintf(stderr,
                     "  shadow   0x%" PRIx64 "-0x%" PRIx64 " -> 0x%" PRIx64
                     " perm %u\n",
                     r.first, r.last, r.phys, r.perm);
      Fail("notifier mappings differ from the shadow's", kWatched[i],
           got.size());
    }
    // A MAP over the MSI window is accepted and notified (QEMU 7.2; the
    // window stays identity for translation): the notifier holds it as
    // the shadow does; the host container must not (CheckContainer).
    for (const Run& r : got) {
      Note(r.first);
      Note(r.last);
      Note(r.phys);
      Note(r.perm);
    }
  }
  CheckContainer();
}

void Program::CheckContainer() {
  vfio::VfioContainer* c = mach_->container();
  if (c == nullptr) Fail("vfio-pci lost its container", 0, 0);
  const uint64_t ram = mach_->ram_hva();
  const auto& maps = c->mappings();
  const bool bypassed = shadow_.Bypassed(kVfioDevfn);
  Note(maps.size());
  if (Verbose()) {
    std::fprintf(stderr, "virtio_iommu_fuzzer: container %zu mappings%s\n",
                 maps.size(), bypassed ? " (bypassed)" : "");
  }
  for (const auto& [iova, dm] : maps) {
    const uint64_t last = iova + dm.size - 1;
    Note(iova);
    Note(dm.size);
    Note(dm.hva - ram);
    Note(dm.readonly);
    if (iova <= kMsiLast && last >= kMsiFirst) {
      Fail("host mapping in the MSI window", iova, last);
    }
    if (bypassed) {
      if (dm.hva != ram + iova || last >= kRamSize || dm.readonly) {
        Fail("bypassed, a host mapping other than RAM identity", iova,
             dm.hva - ram);
      }
      continue;
    }
    uint64_t first = 0;
    const ShadowMapping* sm = shadow_.Lookup(kVfioDevfn, iova, &first);
    if (sm == nullptr || sm->last < last) {
      Fail("a host mapping the shadow does not hold", iova, last);
    }
    const uint32_t perm = sm->flags & (vi::kMapFlagRead | vi::kMapFlagWrite);
    if (perm == 0) Fail("a host mapping of a mapping without R/W", iova, 0);
    if (dm.hva != ram + sm->phys + (iova - first)) {
      Fail("a host mapping to another address", iova, dm.hva - ram);
    }
    if (dm.readonly != !(perm & vi::kMapFlagWrite)) {
      Fail("a host mapping's permission", iova, perm);
    }
  }
  if (bypassed) {
    // All of RAM: at least the data region is there.
    auto it = maps.upper_bound(kDataFirst);
    if (it == maps.begin() ||
        std::prev(it)->first + std::prev(it)->second.size <= kDataFirst) {
      Fail("bypassed, RAM not mapped in the host", maps.size(), 0);
    }
    return;
  }
  // Every mapping the host can take is there: page-aligned, into RAM
  // above 1 MiB, clear of the MSI window, inside the valid IOVA ranges.
  const std::vector<Range>& ranges = c->iova_ranges();
  for (const auto& [first, m] : shadow_.Expected(kVfioDevfn)) {
    const uint64_t size = m.last - first + 1;
    if (m.excused || ((first | size | m.phys) & 0xfff) != 0 || size == 0 ||
        m.phys < kDataFirst || m.phys >= kRamSize || size > kRamSize - m.phys ||
        (first <= kMsiLast && m.last >= kMsiFirst)) {
      continue;
    }
    const uint64_t lo = first, hi = m.last;
    if (!ranges.empty() &&
        std::none_of(ranges.begin(), ranges.end(), [&](const Range& r) {
          return r.first <= lo && hi <= r.last;
        })) {
      continue;
    }
    uint64_t covered = 0;
    for (auto it = maps.lower_bound(first);
         it != maps.end() && it->first <= m.last; ++it) {
      covered += it->second.size;
    }
    if (covered != size) {
      Fail("a shadow mapping missing from the host container", first, covered);
    }
  }
}

// Reads the fault records posted since the last look; each must be one
// the shadow gives for its address.
void Program::CollectFaults(uint16_t sid, bool write) {
  const uint16_t used = Get16(kEvtUsed + 2);
  while (evt_used_seen_ != used) {
    const uint64_t e = kEvtUsed + 4 + 8u * (evt_used_seen_ % kEvtQueueSize);
    ++evt_used_seen_;
    const uint32_t id = Get32(e), len = Get32(e + 4);
    if (id >= kEvtQueueSize || len != vi::kFaultSize) {
      Fail("event used entry", id, len);
    }
    uint8_t r[vi::kFaultSize];
    RamRead(kEvtBufs + id * 32u, r, sizeof r);
    if (tracing_) Trace().Add(r, sizeof r);
    uint32_t flags, ep;
    uint64_t addr;
    std::memcpy(&flags, r + 4, 4);
    std::memcpy(&ep, r + 8, 4);
    std::memcpy(&addr, r + 16, 8);
    if (ep != sid) Fail("fault record of another endpoint", ep, sid);
    const Translated t = shadow_.Translate(sid, addr, write);
    if (!t.fault || t.reason != r[0] || t.flags != flags) {
      std::fprintf(stderr, "record reason %u flags 0x%x, shadow %d/%u/0x%x\n",
                   r[0], flags, t.fault, t.reason, t.flags);
      Fail("fault record the shadow does not give", addr, r[0]);
    }
  }
}

}  // namespace viommu::fuzz::virtio_iommu_target
