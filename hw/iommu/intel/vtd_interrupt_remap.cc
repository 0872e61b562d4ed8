// Interrupt remapping: request decoding, IRTE fetch and checks, faults,
// the interrupt-entry cache, and the "vtd-ir" window front end.
#include "viommu/hw/iommu/vtd_interrupt_remap.h"

#include <algorithm>
#include <utility>

#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/util/check.h"
#include "viommu/util/log.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {

InterruptRemapper::InterruptRemapper(const IntelIommu* iommu, GuestMemory* mem,
                                     FaultSink sink)
    : iommu_(iommu), mem_(mem), sink_(std::move(sink)) {}

std::optional<InterruptMessage> InterruptRemapper::Block(uint16_t sid,
                                                         FaultReason reason,
                                                         uint32_t index,
                                                         bool fpd) {
  ++stats_.blocked;
  const auto code = static_cast<unsigned>(reason);
  VIOMMU_TRACE(vtd_ir_fault, sid, index, code, fpd);
  VIOMMU_LOG_GUEST_ERROR(
      "vtd: interrupt remapping fault: sid 0x%04x index %u reason 0x%x%s", sid,
      index, code, fpd ? " (FPD set)" : "");
  if (!(fpd && IsQualifiedFault(reason)) && sink_) {
    if (pending_ != nullptr) {
      *pending_ = PendingFault{.set = true,
                               .sid = sid,
                               .reason = reason,
                               .index = static_cast<uint16_t>(index)};
    } else {
      sink_(sid, reason, static_cast<uint16_t>(index));
    }
  }
  return std::nullopt;
}

std::optional<InterruptMessage> InterruptRemapper::RemapShared(
    uint64_t address, uint32_t data, std::optional<uint16_t> sid) {
  PendingFault fault;
  std::optional<InterruptMessage> m;
  {
    MutexLock l(&mu_);
    pending_ = &fault;
    m = Remap(address, data, sid);
    pending_ = nullptr;
  }
  if (fault.set) sink_(fault.sid, fault.reason, fault.index);
  return m;
}

std::optional<Irte> InterruptRemapper::Fetch(uint32_t index, bool* cached) {
  if (index < cache_.size() && (valid_[index / 64] >> (index % 64)) & 1) {
    ++stats_.cache_hits;
    *cached = true;
    return cache_[index].e;
  }
  *cached = false;
  ++stats_.irte_reads;
  uint64_t raw[2];
  if (!mem_->Read(iommu_->ir_table() + uint64_t{index} * sizeof(Irte), raw,
                  sizeof(raw))) {
    return std::nullopt;
  }
  return Irte{.lo = LoadLe64(&raw[0]), .hi = LoadLe64(&raw[1])};
}

void InterruptRemapper::Cache(uint32_t index, const Irte& e, bool eime) {
  if (index >= cache_.size()) {
    // Grow geometrically up to the table (IRTEs are usually allocated
    // from index 0 up; a full 2^16-entry table would be 2 MiB).
    const size_t n = std::min<size_t>(
        std::max<size_t>({index + 1, cache_.size() * 2, 64}),
        std::max<size_t>(iommu_->ir_table_size(), index + 1));
    cache_.resize(n);
    valid_.resize((n + 63) / 64, 0);
  }
  uint64_t& word = valid_[index / 64];
  const uint64_t bit = uint64_t{1} << (index % 64);
  if (!(word & bit)) ++cached_;
  word |= bit;
  cache_[index] = Slot{.e = e, .msg = ComposeMessage(e, eime, 0)};
}

void InterruptRemapper::Uncache(uint32_t index) {
  if (index >= cache_.size()) return;
  uint64_t& word = valid_[index / 64];
  const uint64_t bit = uint64_t{1} << (index % 64);
  if (word & bit) --cached_;
  word &= ~bit;
}

std::optional<InterruptMessage> InterruptRemapper::RemapSlow(
    uint64_t address, uint32_t data, std::optional<uint16_t> requester) {
  const uint16_t sid = requester.value_or(kNoRequesterSid);
  const InterruptMessage request{.address = address, .data = data};
  ++stats_.requests;
  VIOMMU_TRACE(vtd_ir_remap_msi_req, sid, address, data);

  const MsiRequestDecode d = DecodeMsiRequest(address, data);
  if (d.high_address || d.bad_head) {
    return Block(sid, FaultReason::kIrReqRsvd, 0, false);
  }
  if (!d.remappable) {
    if (iommu_->ir_eime() || !iommu_->cfi_enabled()) {
      return Block(sid, FaultReason::kIrReqCompat, 0, false);
    }
    ++stats_.passed;
    VIOMMU_TRACE(vtd_ir_remap_type, "compat");
    return request;
  }
  if (d.data_reserved) return Block(sid, FaultReason::kIrReqRsvd, 0, false);
  if (d.index >= iommu_->ir_table_size()) {
    return Block(sid, FaultReason::kIrIndexOver, d.index & 0xffff, false);
  }
  bool cached = false;
  std::optional<Irte> e = Fetch(d.index, &cached);
  if (!e.has_value()) {
    return Block(sid, FaultReason::kIrRootInval, d.index, false);
  }
  VIOMMU_TRACE(vtd_ir_irte_get, d.index, e->hi, e->lo, cached);
  const bool eime = iommu_->ir_eime();
  if (!e->present()) {
    return Block(sid, FaultReason::kIrEntryP, d.index, e->fpd());
  }
  if (IrteReservedBitsSet(*e, eime)) {
    return Block(sid, FaultReason::kIrIrteRsvd, d.index, e->fpd());
  }
  if (!cached) Cache(d.index, *e, eime);
  if (requester.has_value() && !VerifySourceId(*e, sid)) {
    return Block(sid, FaultReason::kIrSidErr, d.index, e->fpd());
  }
  if (d.shv) {
    VIOMMU_TRACE(vtd_ir_remap_type, "MSI");
  } else {
    // The IOxAPIC form: its vector and trigger mode should match the
    // IRTE's (§5.1.5.1); the IRTE's are used.
    VIOMMU_TRACE(vtd_ir_remap_type, "IOAPIC");
    if ((data & 0xff) != e->vector()) {
      VIOMMU_TRACE(vtd_warn_ir_vector, sid, d.index, data & 0xff,
                   e->vector());
    }
    const bool level = (data & kMsiDataTriggerLevel) != 0;
    if (level != e->trigger_level()) {
      VIOMMU_TRACE(vtd_warn_ir_trigger, sid, d.index, level,
                   e->trigger_level());
    }
  }
  const InterruptMessage out = ComposeMessage(*e, eime, address);
  ++stats_.remapped;
  VIOMMU_TRACE(vtd_ir_remap, d.index, e->trigger_level(), e->vector(),
               e->delivery_mode(), IrteDestination(*e, eime),
               e->dest_mode_logical());
  VIOMMU_TRACE(vtd_ir_remap_msi, address, data, out.address, out.data);
  return out;
}

bool InterruptRemapper::enabled() const { return iommu_->ir_enabled(); }

InterruptRemapStats InterruptRemapper::stats() const {
  MutexLock l(&mu_);
  InterruptRemapStats s = stats_;
  s.requests += fast_hits_;
  s.remapped += fast_hits_;
  s.cache_hits += fast_hits_;
  return s;
}

void InterruptRemapper::InvalidateAll() {
  MutexLock l(&mu_);
  std::fill(valid_.begin(), valid_.end(), 0);
  cached_ = 0;
}

size_t InterruptRemapper::cached_entries() const {
  MutexLock l(&mu_);
  return cached_;
}

void InterruptRemapper::InvalidateEntries(uint16_t index, uint8_t index_mask) {
  MutexLock l(&mu_);
  const uint64_t end = std::min<uint64_t>(
      uint64_t{index} + (uint64_t{1} << (index_mask & 31)), cache_.size());
  for (uint64_t i = index; i < end; ++i) Uncache(static_cast<uint32_t>(i));
}

// --- InterruptWindow ---

InterruptWindow::InterruptWindow(
    std::shared_ptr<memory::MemoryRegion> msi_window)
    : msi_window_(std::move(msi_window)),
      target_(msi_window_ != nullptr ? msi_window_->mmio_ops() : nullptr) {
  VIOMMU_CHECK(target_ != nullptr, "interrupt window target is not MMIO");
  VIOMMU_CHECK(msi_window_->size() >= kInterruptWindowSize,
               "interrupt window smaller than 1 MiB");
}

memory::MemTxResult InterruptWindow::Read(uint64_t offset, uint64_t* value,
                                          unsigned size,
                                          memory::MemTxAttrs attrs) {
  return target_->Read(offset, value, size, attrs);
}

memory::MemTxResult InterruptWindow::Write(uint64_t offset, uint64_t value,
                                           unsigned size,
                                           memory::MemTxAttrs attrs) {
  if (remapper_ == nullptr || !remapper_->enabled() || size != 4) {
    return target_->Write(offset, value, size, attrs);
  }
  std::optional<uint16_t> sid;
  if (!attrs.unspecified && attrs.has_requester_id) sid = attrs.requester_id;
  std::optional<InterruptMessage> m = remapper_->RemapShared(
      kInterruptWindowBase + offset, static_cast<uint32_t>(value), sid);
  if (!m.has_value()) return memory::MemTxResult::Error();
  if (sink_) {
    sink_(*m, attrs);
    return memory::MemTxResult::Ok();
  }
  return target_->Write(m->address & kInterruptWindowOffsetMask, m->data, 4,
                        attrs);
}

}  // namespace viommu::vtd
