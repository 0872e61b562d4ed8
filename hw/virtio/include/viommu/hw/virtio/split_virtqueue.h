// viommu/hw/virtio/split_virtqueue.h — one split virtqueue (VIRTIO 1.2
// §2.7) in guest memory, seen from the device: the one bounds-checked
// accessor that turns an available descriptor chain into readable and
// writable segment lists, the used ring, interrupt suppression, and copies
// between a chain's segments and device buffers. All guest memory is
// reached through the device's DMA address space (bus mastering, vIOMMU).
//
//   VirtqElement elem;                          // reuse: no allocation per pop
//   while (vq.Pop(&elem) == SplitVirtqueue::PopResult::kElement) {
//     Request req;
//     size_t got = vq.ReadFrom(elem, 0, &req, sizeof(req));
//     uint32_t written = vq.WriteTo(elem, 0, &reply, sizeof(reply));
//     vq.Push(elem, written);
//   }
//
// Pop rejects (kError, after DeviceError on the transport: NEEDS_RESET,
// nothing more is processed until reset) a head index out of range, an
// unreadable ring or descriptor, a zero-length buffer, a readable buffer
// after a writable one, an indirect table whose length is 0 or not a
// multiple of 16, an indirect descriptor anywhere but at the head of the
// chain (nested or chained indirect), a next index outside the table, a
// chain longer than its table or than kMaxQueueSize buffers (so a loop is
// found after at most that many steps), a buffer that does not lie wholly
// in mapped memory (or is writable and lies in read-only memory), and more
// elements in flight than the queue size. A rejected chain is consumed
// (last_avail_idx moved past it) and gets no used entry, as in QEMU 7.2.
// Indirect descriptors are honoured whether or not INDIRECT_DESC was
// negotiated (as QEMU). Indices wrap at 2^16; a ring slot is index % size.
//
// Threading: control context only (the transport's).
#ifndef VIOMMU_HW_VIRTIO_SPLIT_VIRTQUEUE_H_
#define VIOMMU_HW_VIRTIO_SPLIT_VIRTQUEUE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "viommu/hw/virtio/virtio_transport.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/mem_tx.h"

namespace viommu::hw::virtio {

// One guest buffer of a chain: `len` (> 0) bytes at DMA address `addr`.
struct VirtqSegment {
  uint64_t addr = 0;
  uint32_t len = 0;
};

// A popped descriptor chain. Reusable: Pop clears it but keeps its
// capacity, so a long-lived element allocates only while it grows.
class VirtqElement {
 public:
  VirtqElement() {
    readable_.reserve(4);
    writable_.reserve(4);
  }
  // The head descriptor index (the used-ring id).
  uint16_t head() const { return head_; }
  std::span<const VirtqSegment> readable() const { return readable_; }
  std::span<const VirtqSegment> writable() const { return writable_; }
  uint64_t readable_bytes() const { return readable_bytes_; }
  uint64_t writable_bytes() const { return writable_bytes_; }

 private:
  friend class SplitVirtqueue;
  void Clear() {
    head_ = 0;
    readable_.clear();
    writable_.clear();
    readable_bytes_ = writable_bytes_ = 0;
  }
  uint16_t head_ = 0;
  std::vector<VirtqSegment> readable_;
  std::vector<VirtqSegment> writable_;
  uint64_t readable_bytes_ = 0;
  uint64_t writable_bytes_ = 0;
};

class SplitVirtqueue {
 public:
  enum class PopResult { kEmpty, kElement, kError };

  // `transport` (not owned, outlives this) supplies features and the error
  // state; `max_size` (1..kMaxQueueSize) is the size after reset.
  SplitVirtqueue(VirtioTransport* transport, unsigned index, uint16_t max_size);
  SplitVirtqueue(const SplitVirtqueue&) = delete;
  SplitVirtqueue& operator=(const SplitVirtqueue&) = delete;

  // --- the transport's side ---
  // Guest memory: `as` (nullptr: none, every access fails) with `attrs`.
  void SetDma(memory::AddressSpace* as, memory::MemTxAttrs attrs) {
    dma_ = as;
    attrs_ = attrs;
  }
  // Sets the size; false (ignored) unless 1 <= size <= kMaxQueueSize.
  bool SetSize(uint32_t size);
  // Ring addresses, from queue_enable (0 desc: the queue is not live).
  void SetRings(uint64_t desc, uint64_t avail, uint64_t used);
  // Back to the reset state: no rings, indices 0, size max_size().
  void Reset();
  // Whether queue notifications reach the device (QEMU: desc != 0).
  bool live() const { return desc_ != 0; }
  // Interrupt suppression (QEMU's virtio_should_notify): whether the driver
  // wants an interrupt for the used entries added so far. With EVENT_IDX it
  // records the used index it answered for, so call it once per interrupt
  // decision.
  bool ShouldNotify();

  // --- the device's side ---
  // Takes the next available chain into `elem`. kEmpty: nothing available
  // (or the device is broken or disabled, or the queue has no rings).
  // kError: the chain was rejected (see file comment) and DeviceError was
  // called. With EVENT_IDX, writes avail_event after taking a head.
  [[nodiscard]] PopResult Pop(VirtqElement* elem);
  // Returns `elem` to the driver with `written` bytes written (a used ring
  // entry and used index update). Nothing is written while broken. A used
  // ring that cannot be written is a DeviceError.
  void Push(const VirtqElement& elem, uint32_t written);
  // Drops `elem` without a used entry (QEMU's virtqueue_detach_element).
  void Discard(const VirtqElement& elem);

  // Copies up to `len` bytes from `elem`'s readable segments, starting
  // `offset` bytes into them, to `buf`; returns the count copied (less
  // than `len` when the readable part is shorter). Bytes that can no longer
  // be read (the memory map changed since Pop) read as 0.
  size_t ReadFrom(const VirtqElement& elem, uint64_t offset, void* buf,
                  size_t len);
  // Copies up to `len` bytes of `buf` into `elem`'s writable segments,
  // starting `offset` bytes into them; returns the count copied.
  size_t WriteTo(const VirtqElement& elem, uint64_t offset, const void* buf,
                 size_t len);

  // --- state ---
  unsigned index() const { return index_; }
  uint16_t size() const { return size_; }
  uint16_t max_size() const { return max_size_; }
  uint64_t desc_addr() const { return desc_; }
  uint64_t avail_addr() const { return avail_; }
  uint64_t used_addr() const { return used_; }
  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint16_t used_idx() const { return used_idx_; }
  unsigned in_flight() const { return inuse_; }

 private:
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  bool ReadDesc(uint64_t table, uint32_t i, Desc* d);
  bool Read16(uint64_t addr, uint16_t* v);
  bool Write16(uint64_t addr, uint16_t v);
  // Whether [addr, addr + len) is mapped for the access, using at most
  // `*pieces_left` translation pieces (decremented).
  bool Mapped(uint64_t addr, uint32_t len, bool is_write,
              unsigned* pieces_left);
  // Reads the chain at `head` into `elem`; false after DeviceError.
  bool ReadChain(uint16_t head, VirtqElement* elem);
  PopResult Fail(const char* what);

  VirtioTransport* transport_;  // not owned
  unsigned index_;
  uint16_t max_size_;
  uint16_t size_;
  memory::AddressSpace* dma_ = nullptr;  // not owned
  memory::MemTxAttrs attrs_;
  uint64_t desc_ = 0;
  uint64_t avail_ = 0;
  uint64_t used_ = 0;
  uint16_t last_avail_idx_ = 0;
  uint16_t shadow_avail_idx_ = 0;  // the avail idx last read
  uint16_t used_idx_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
  unsigned inuse_ = 0;
};

}  // namespace viommu::hw::virtio

#endif  // VIOMMU_HW_VIRTIO_SPLIT_VIRTQUEUE_H_
