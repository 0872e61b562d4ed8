// viommu/hw/iommu/vtd_invalidation_queue.h — VT-d queued invalidation as
// QEMU 7.2 does it in legacy mode: 128-bit descriptors fetched one at a
// time from the ring at IQA, decoded with 7.2's type field and reserved
// masks, and dispatched as typed requests to an InvalidationSink.
//
//   class Engine final : public vtd::Observer, public vtd::InvalidationSink {
//     void OnQueueTailWritten(uint32_t) override { queue_.Drain(); }
//     void InvalidateIotlb(...) override { ... }   // + the other three
//     vtd::InvalidationQueue queue_{iommu, &guest_mem, this};
//   };
//
// ProcessQueue is the pure core (no register model); InvalidationQueue
// applies its outcome to an IntelIommu (IQH, FSTS.IQE, ICS.IWC / IECTL).
//
// QEMU 7.2 facts this follows (hw/i386/intel_iommu.c, Debian 7.2+dfsg
// unchanged there): type = lo bits 3:0 only; types 6 and 7 (PASID-IOTLB,
// PASID-cache) are accepted and ignored; 0 and 8..15 are errors; the IEC
// descriptor has no reserved-bit check; a device-IOTLB descriptor is
// processed whether or not ECAP.DT is advertised; a wait descriptor needs
// SW or IF (FN alone is an error); IQA.DW without ECAP.SMTS is ignored, so
// legacy mode always uses 16-byte descriptors. Processing stops at the
// first bad descriptor with IQH still pointing at it.
//
// Threading: control context only (QEMU runs this inside the IQT write).
#ifndef VIOMMU_HW_IOMMU_VTD_INVALIDATION_QUEUE_H_
#define VIOMMU_HW_IOMMU_VTD_INVALIDATION_QUEUE_H_

#include <cstdint>
#include <optional>

#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_regs.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

class IntelIommu;

// One 128-bit descriptor as stored in the queue (little-endian quads).
struct InvDesc {
  uint64_t lo = 0;
  uint64_t hi = 0;
};
static_assert(sizeof(InvDesc) == 16);

// Why processing stopped; every value but kNone sets FSTS.IQE.
enum class QueueError : uint8_t {
  kNone = 0,
  kBadTail,          // tail >= queue size; nothing was fetched
  kFetchFailed,      // the descriptor could not be read
  kUnknownType,      // type 0 or 8..15
  kReservedBits,     // a reserved field of that type is non-zero
  kBadGranularity,   // context-cache or IOTLB G = 0
  kAmAboveMamv,      // IOTLB page invalidation with AM > 18
  kWaitNoAction,     // wait descriptor with neither SW nor IF
  kWaitWriteFailed,  // the SW status write did not land
};

// The cache invalidations the queue asks for, one call per valid
// descriptor, in queue order, synchronously. All methods are required.
class InvalidationSink {
 public:
  InvalidationSink() = default;
  InvalidationSink(const InvalidationSink&) = delete;
  InvalidationSink& operator=(const InvalidationSink&) = delete;
  virtual ~InvalidationSink() = default;

  // G from the descriptor: kGlobal, kDomain (QEMU 7.2 flushes globally for
  // both) or kDevice (sid, fm = function mask 0..3). `did` is always the
  // descriptor's field. Never kInvalid (that is an error).
  virtual void InvalidateContext(ContextGranularity g, uint16_t did,
                                 uint16_t sid, uint8_t fm) = 0;
  // kGlobal, kDomain (did) or kPage (did, addr with bits 11:0 clear,
  // am <= 18, ih). Never kInvalid.
  virtual void InvalidateIotlb(IotlbGranularity g, uint16_t did, Iova addr,
                               uint8_t am, bool ih) = 0;
  // ATS invalidation for the device `sid` (QEMU: a DEVIOTLB_UNMAP event on
  // its address space, nothing if it has none): [addr, addr + size_mask],
  // addr aligned to size_mask + 1 as decoded from S (size_mask is all ones
  // when the encoded size reaches 2^64).
  virtual void InvalidateDeviceIotlb(uint16_t sid, Iova addr,
                                     uint64_t size_mask) = 0;
  // Interrupt-entry cache: `global`, or entries [index, index + 2^mask).
  virtual void InvalidateInterruptEntries(bool global, uint16_t index,
                                          uint8_t index_mask) = 0;
};

// Register-side progress, in QEMU's order. Optional (may be nullptr).
class QueueProgress {
 public:
  QueueProgress() = default;
  QueueProgress(const QueueProgress&) = delete;
  QueueProgress& operator=(const QueueProgress&) = delete;
  virtual ~QueueProgress() = default;

  // A wait descriptor with IF: raise the completion event now (after the
  // earlier descriptors' effects, before IQH moves past this one).
  virtual void OnWaitInterrupt() = 0;
  // A descriptor completed; `head` is the next index (IQH = head << 4).
  virtual void OnHeadAdvanced(uint32_t head, bool was_wait) = 0;
};

struct QueueRunResult {
  uint32_t new_head = 0;  // where IQH ends (the bad descriptor on error)
  QueueError error = QueueError::kNone;
  // Whether the last fetched descriptor was a wait descriptor (QEMU's
  // iq_last_desc_type, set on fetch even if it then fails; false after a
  // failed fetch). nullopt when nothing was fetched (state unchanged).
  std::optional<bool> last_was_wait;
  uint32_t completed = 0;        // descriptors processed successfully
  uint32_t wait_interrupts = 0;  // OnWaitInterrupt calls

  bool failed() const { return error != QueueError::kNone; }
};

// Processes descriptors [head, tail) of the ring of `size` descriptors of
// `desc_size` bytes (16, or 32 with IQA.DW in scalable mode) at `base`, as
// vtd_fetch_inv_desc: tail >= size is kBadTail before anything is read;
// then each descriptor's first 16 bytes are read at base + desc_size *
// head (QEMU 7.2 looks at no bit of the upper half of a 256-bit
// descriptor), checked and dispatched, and head advances (wrapping at
// size) until it reaches tail or a descriptor fails. Wait status writes go
// through mem.Write (4 bytes, little-endian, address = hi unmasked).
// REQUIRES: head < size.
QueueRunResult ProcessQueue(GuestMemory& mem, Hwaddr base, uint32_t size,
                            uint32_t head, uint32_t tail,
                            InvalidationSink& sink, QueueProgress* progress,
                            uint32_t desc_size = 16);

// Checks and dispatches one descriptor (no fetch, no head movement);
// `progress` gets OnWaitInterrupt only. For tests and fuzzing.
QueueError ProcessDescriptor(const InvDesc& desc, GuestMemory& mem,
                             InvalidationSink& sink, QueueProgress* progress);

// Runs the queue of an IntelIommu and applies the outcome: IQH after every
// descriptor (SetQueueHead), the completion event at each IF
// (SignalInvalidationWait), FSTS.IQE on error (ReportQueueError).
class InvalidationQueue final {
 public:
  // None owned; each must outlive this.
  InvalidationQueue(IntelIommu* iommu, GuestMemory* mem, InvalidationSink* sink)
      : iommu_(iommu), mem_(mem), sink_(sink) {}
  InvalidationQueue(const InvalidationQueue&) = delete;
  InvalidationQueue& operator=(const InvalidationQueue&) = delete;

  // Call from Observer::OnQueueTailWritten (which already checked QI
  // enabled and FSTS.IQE clear). Processes [queue_head, queue_tail). A call
  // made from inside a run (a wait status write landing on IQT) is
  // deferred until the run ends, then the queue is run again if QI is
  // still enabled and IQE clear; QEMU 7.2 recurses there.
  void Drain();

  uint64_t errors() const { return errors_; }
  QueueError last_error() const { return last_error_; }

 private:
  void RunOnce();

  IntelIommu* const iommu_;       // not owned
  GuestMemory* const mem_;        // not owned
  InvalidationSink* const sink_;  // not owned
  bool running_ = false;
  bool rerun_ = false;
  uint64_t errors_ = 0;
  QueueError last_error_ = QueueError::kNone;
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_INVALIDATION_QUEUE_H_
