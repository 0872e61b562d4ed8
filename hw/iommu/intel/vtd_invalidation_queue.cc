// Queued invalidation as QEMU 7.2: vtd_fetch_inv_desc, vtd_process_inv_desc
// and the per-type handlers (context cache, IOTLB, device IOTLB, IEC,
// wait), with 7.2's masks from intel_iommu_internal.h.
#include "viommu/hw/iommu/vtd_invalidation_queue.h"

#include <bit>

#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/util/check.h"
#include "viommu/util/log.h"
#include "viommu/util/trace.h"

namespace viommu::vtd {
namespace {

// Descriptor type: 7.2 decodes lo bits 3:0 only (bits 11:9 are not part of
// it; they fall under each type's reserved mask, or are ignored by IEC).
constexpr uint64_t kTypeMask = 0xf;
constexpr uint8_t kTypeContext = 1;
constexpr uint8_t kTypeIotlb = 2;
constexpr uint8_t kTypeDeviceIotlb = 3;
constexpr uint8_t kTypeIec = 4;
constexpr uint8_t kTypeWait = 5;
constexpr uint8_t kTypePasidIotlb = 6;
constexpr uint8_t kTypePasidCache = 7;

// G (granularity) of context-cache and IOTLB descriptors: lo bits 5:4.
constexpr int kGranularityShift = 4;
constexpr uint64_t kDidShift = 16;  // lo bits 31:16

// Context-cache: SID lo 47:32, FM lo 49:48; hi entirely reserved.
constexpr uint64_t kCcRsvdLo = 0xfffc'0000'0000'ffc0;
constexpr int kCcSidShift = 32;
constexpr int kCcFmShift = 48;

// IOTLB: ADDR hi 63:12, IH hi bit 6, AM hi 5:0.
constexpr uint64_t kIotlbRsvdLo = 0xffff'ffff'0000'ff00;
constexpr uint64_t kIotlbRsvdHi = 0xf80;
constexpr uint64_t kIotlbIh = 1ull << 6;
constexpr uint64_t kIotlbAmMask = 0x3f;
constexpr uint64_t kPageAddrMask = ~0xfffull;

// Device IOTLB: SID lo 47:32, ADDR hi 63:12, S hi bit 0.
constexpr uint64_t kDevRsvdLo = 0xffff'0000'ffe0'fff8;
constexpr uint64_t kDevRsvdHi = 0xffe;
constexpr int kDevSidShift = 32;
constexpr uint64_t kDevSize = 1;
constexpr uint64_t kPageSize = 0x1000;

// IEC: G lo bit 4 (0 = global), IM lo 31:27, IIDX lo 47:32. No reserved
// check in 7.2.
constexpr uint64_t kIecIndexSelective = 1ull << 4;
constexpr int kIecMaskShift = 27;
constexpr uint64_t kIecMaskMask = 0x1f;
constexpr int kIecIndexShift = 32;

// Wait: IF bit 4, SW bit 5, FN bit 6, status data lo 63:32, address hi.
constexpr uint64_t kWaitIf = 1ull << 4;
constexpr uint64_t kWaitSw = 1ull << 5;
constexpr uint64_t kWaitRsvdLo = 0xffff'ff80;
constexpr uint64_t kWaitRsvdHi = 0x3;
constexpr int kWaitDataShift = 32;

uint16_t Did(uint64_t lo) { return static_cast<uint16_t>(lo >> kDidShift); }

QueueError ContextCache(const InvDesc& d, InvalidationSink& sink) {
  if ((d.lo & kCcRsvdLo) != 0 || d.hi != 0) return QueueError::kReservedBits;
  const auto g =
      static_cast<ContextGranularity>((d.lo >> kGranularityShift) & 3);
  if (g == ContextGranularity::kInvalid) return QueueError::kBadGranularity;
  sink.InvalidateContext(g, Did(d.lo),
                         static_cast<uint16_t>(d.lo >> kCcSidShift),
                         static_cast<uint8_t>((d.lo >> kCcFmShift) & 3));
  return QueueError::kNone;
}

QueueError Iotlb(const InvDesc& d, InvalidationSink& sink) {
  if ((d.lo & kIotlbRsvdLo) != 0 || (d.hi & kIotlbRsvdHi) != 0) {
    return QueueError::kReservedBits;
  }
  const auto g = static_cast<IotlbGranularity>((d.lo >> kGranularityShift) & 3);
  const auto am = static_cast<uint8_t>(d.hi & kIotlbAmMask);
  switch (g) {
    case IotlbGranularity::kInvalid:
      return QueueError::kBadGranularity;
    case IotlbGranularity::kPage:
      if (am > kMamv) return QueueError::kAmAboveMamv;
      break;
    case IotlbGranularity::kGlobal:
    case IotlbGranularity::kDomain:
      break;
  }
  sink.InvalidateIotlb(g, Did(d.lo), d.hi & kPageAddrMask, am,
                       (d.hi & kIotlbIh) != 0);
  return QueueError::kNone;
}

QueueError DeviceIotlb(const InvDesc& d, InvalidationSink& sink) {
  if ((d.lo & kDevRsvdLo) != 0 || (d.hi & kDevRsvdHi) != 0) {
    return QueueError::kReservedBits;
  }
  uint64_t addr = d.hi & kPageAddrMask;
  uint64_t size = kPageSize;
  if (d.hi & kDevSize) {
    // ATS size encoding: the run of ones from address bit 12 upwards says
    // how many times the 8 KiB minimum doubles. A run of 51 or more bits
    // overflows to 0, i.e. the whole 64-bit space (as QEMU computes it).
    const int ones = std::countr_one(addr >> 12);
    size = (kPageSize * 2) << ones;
    addr &= ~(size - 1);
  }
  sink.InvalidateDeviceIotlb(static_cast<uint16_t>(d.lo >> kDevSidShift), addr,
                             size - 1);
  return QueueError::kNone;
}

QueueError Iec(const InvDesc& d, InvalidationSink& sink) {
  sink.InvalidateInterruptEntries(
      (d.lo & kIecIndexSelective) == 0,
      static_cast<uint16_t>(d.lo >> kIecIndexShift),
      static_cast<uint8_t>((d.lo >> kIecMaskShift) & kIecMaskMask));
  return QueueError::kNone;
}

QueueError Wait(const InvDesc& d, GuestMemory& mem, QueueProgress* progress) {
  if ((d.lo & kWaitRsvdLo) != 0 || (d.hi & kWaitRsvdHi) != 0) {
    return QueueError::kReservedBits;
  }
  if (d.lo & kWaitSw) {
    // Little-endian host (vtd_guest_memory.h), so the value is the bytes.
    const auto data = static_cast<uint32_t>(d.lo >> kWaitDataShift);
    if (!mem.Write(d.hi, &data, sizeof(data))) {
      return QueueError::kWaitWriteFailed;
    }
    // SW and IF together: QEMU 7.2 asserts (a guest could abort the VM);
    // the VT-d specification, and later QEMU, do both: status, then IF.
    if (!(d.lo & kWaitIf)) return QueueError::kNone;
  }
  if (d.lo & kWaitIf) {
    if (progress != nullptr) progress->OnWaitInterrupt();
    return QueueError::kNone;
  }
  return QueueError::kWaitNoAction;  // FN alone, or nothing
}

}  // namespace

QueueError ProcessDescriptor(const InvDesc& desc, GuestMemory& mem,
                             InvalidationSink& sink, QueueProgress* progress) {
  switch (static_cast<uint8_t>(desc.lo & kTypeMask)) {
    case kTypeContext:
      return ContextCache(desc, sink);
    case kTypeIotlb:
      return Iotlb(desc, sink);
    case kTypeDeviceIotlb:
      return DeviceIotlb(desc, sink);
    case kTypeIec:
      return Iec(desc, sink);
    case kTypeWait:
      return Wait(desc, mem, progress);
    case kTypePasidIotlb:
    case kTypePasidCache:
      VIOMMU_LOG_UNIMP("vtd: PASID invalidation descriptor (type %u) ignored",
                       static_cast<unsigned>(desc.lo & kTypeMask));
      return QueueError::kNone;  // 7.2 accepts and ignores these
    default:
      return QueueError::kUnknownType;
  }
}

QueueRunResult ProcessQueue(GuestMemory& mem, Hwaddr base, uint32_t size,
                            uint32_t head, uint32_t tail,
                            InvalidationSink& sink, QueueProgress* progress,
                            uint32_t desc_size) {
  QueueRunResult r;
  r.new_head = head;
  if (tail >= size) {
    r.error = QueueError::kBadTail;
    return r;
  }
  VIOMMU_CHECK(head < size, "invalidation queue head outside the ring");
  while (r.new_head != tail) {
    InvDesc d;
    if (!mem.Read(base + Hwaddr{r.new_head} * desc_size, &d, sizeof(d))) {
      r.last_was_wait = false;
      r.error = QueueError::kFetchFailed;
      return r;
    }
    VIOMMU_TRACE(vtd_inv_desc, static_cast<unsigned>(d.lo & kTypeMask), d.hi,
                 d.lo);
    const bool is_wait = (d.lo & kTypeMask) == kTypeWait;
    r.last_was_wait = is_wait;
    const bool signals = is_wait && (d.lo & kWaitIf) != 0;
    r.error = ProcessDescriptor(d, mem, sink, progress);
    if (r.failed()) return r;
    if (signals) ++r.wait_interrupts;  // SW with IF failed above
    ++r.completed;
    r.new_head = r.new_head + 1 == size ? 0 : r.new_head + 1;
    if (progress != nullptr) progress->OnHeadAdvanced(r.new_head, is_wait);
  }
  return r;
}

namespace {

// Applies progress to the register model as it happens.
class IommuProgress final : public QueueProgress {
 public:
  explicit IommuProgress(IntelIommu* iommu) : iommu_(iommu) {}
  void OnWaitInterrupt() override { iommu_->SignalInvalidationWait(); }
  void OnHeadAdvanced(uint32_t head, bool was_wait) override {
    iommu_->SetQueueHead(head, was_wait);
  }

 private:
  IntelIommu* iommu_;  // not owned
};

}  // namespace

void InvalidationQueue::Drain() {
  if (running_) {
    rerun_ = true;
    return;
  }
  running_ = true;
  RunOnce();
  while (rerun_) {
    rerun_ = false;
    if (!iommu_->qi_enabled() || iommu_->queue_error_pending()) {
      break;
    }
    RunOnce();
  }
  running_ = false;
}

void InvalidationQueue::RunOnce() {
  IommuProgress progress(iommu_);
  // Assigned rather than initialised: with the result constructed in place,
  // GCC 12 at -O3 reports a false -Wdangling-pointer on the reads below.
  QueueRunResult r;
  r = ProcessQueue(*mem_, iommu_->queue_base(), iommu_->queue_size(),
                   iommu_->queue_head(), iommu_->queue_tail(), *sink_,
                   &progress, iommu_->queue_dw() ? 32 : 16);
  if (!r.failed()) return;
  VIOMMU_TRACE(vtd_inv_qi_error, r.new_head, static_cast<int>(r.error));
  VIOMMU_LOG_GUEST_ERROR("vtd: invalidation queue error %d at head %u",
                         static_cast<int>(r.error), r.new_head);
  ++errors_;
  last_error_ = r.error;
  // A failed descriptor still counts as fetched (QEMU's iq_last_desc_type);
  // IQH itself does not move, so rewriting it is harmless.
  if (r.last_was_wait.has_value()) {
    iommu_->SetQueueHead(r.new_head, *r.last_was_wait);
  }
  iommu_->ReportQueueError();
}

}  // namespace viommu::vtd
