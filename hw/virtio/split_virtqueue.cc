// SplitVirtqueue: the device side of a split virtqueue (VIRTIO 1.2 §2.7),
// with the rejection rules of split_virtqueue.h and QEMU 7.2's index,
// in-flight and interrupt-suppression arithmetic (hw/virtio/virtio.c's
// behaviour, re-implemented).
#include "viommu/hw/virtio/split_virtqueue.h"

#include <algorithm>
#include <cstring>

#include "viommu/util/le_bytes.h"

namespace viommu::hw::virtio {

SplitVirtqueue::SplitVirtqueue(VirtioTransport* transport, unsigned index,
                               uint16_t max_size)
    : transport_(transport),
      index_(index),
      max_size_(max_size),
      size_(max_size) {}

bool SplitVirtqueue::SetSize(uint32_t size) {
  if (size == 0 || size > kMaxQueueSize) return false;
  size_ = static_cast<uint16_t>(size);
  return true;
}

void SplitVirtqueue::SetRings(uint64_t desc, uint64_t avail, uint64_t used) {
  desc_ = desc;
  avail_ = avail;
  used_ = used;
}

void SplitVirtqueue::Reset() {
  desc_ = avail_ = used_ = 0;
  last_avail_idx_ = shadow_avail_idx_ = used_idx_ = 0;
  signalled_used_ = 0;
  signalled_used_valid_ = false;
  inuse_ = 0;
  size_ = max_size_;
}

bool SplitVirtqueue::Read16(uint64_t addr, uint16_t* v) {
  uint8_t raw[2] = {0, 0};
  const bool ok = dma_ != nullptr && dma_->Read(addr, raw, 2, attrs_).ok();
  *v = static_cast<uint16_t>(LoadLe(raw, 2));
  return ok;
}

bool SplitVirtqueue::Write16(uint64_t addr, uint16_t v) {
  uint8_t raw[2];
  StoreLe(raw, v, 2);
  return dma_ != nullptr && dma_->Write(addr, raw, 2, attrs_).ok();
}

bool SplitVirtqueue::ReadDesc(uint64_t table, uint32_t i, Desc* d) {
  uint8_t raw[kDescSize];
  if (dma_ == nullptr ||
      !dma_->Read(table + uint64_t{i} * kDescSize, raw, sizeof(raw), attrs_)
           .ok()) {
    return false;
  }
  d->addr = LoadLe(raw, 8);
  d->len = static_cast<uint32_t>(LoadLe(raw + 8, 4));
  d->flags = static_cast<uint16_t>(LoadLe(raw + 12, 2));
  d->next = static_cast<uint16_t>(LoadLe(raw + 14, 2));
  return true;
}

bool SplitVirtqueue::Mapped(uint64_t addr, uint32_t len, bool is_write,
                            unsigned* pieces_left) {
  if (dma_ == nullptr) return false;
  if (addr + (len - 1) < addr) return false;  // wraps past 2^64
  uint64_t remaining = len;
  while (remaining > 0) {
    // A buffer scattered over more pieces than a chain may have buffers
    // (QEMU's iovec limit) is refused: the walk stays bounded.
    if (*pieces_left == 0) return false;
    --*pieces_left;
    const memory::Translation t =
        dma_->Translate(addr, remaining, is_write, attrs_);
    if (t.mr == nullptr || !t.result.ok() || t.len == 0) return false;
    if (is_write && t.readonly) return false;
    const uint64_t step = std::min(t.len, remaining);
    addr += step;
    remaining -= step;
  }
  return true;
}

SplitVirtqueue::PopResult SplitVirtqueue::Fail(const char* what) {
  transport_->DeviceError(what);
  return PopResult::kError;
}

bool SplitVirtqueue::ReadChain(uint16_t head, VirtqElement* elem) {
  elem->head_ = head;
  uint64_t table = desc_;
  uint32_t table_size = size_;
  Desc d;
  if (!ReadDesc(table, head, &d)) {
    Fail("cannot read a descriptor");
    return false;
  }
  bool in_indirect = false;
  if (d.flags & kDescFlagIndirect) {
    if (d.len == 0 || d.len % kDescSize != 0) {
      Fail("indirect table length is 0 or not a multiple of 16");
      return false;
    }
    // The head's NEXT flag, if any, is ignored (as QEMU).
    table = d.addr;
    table_size = static_cast<uint32_t>(d.len / kDescSize);
    in_indirect = true;
    if (!ReadDesc(table, 0, &d)) {
      Fail("cannot read the indirect table");
      return false;
    }
  }
  // A chain visits each table entry at most once; more steps than that (or
  // than any chain may have) is a loop or an oversize chain.
  const uint32_t max_steps = std::min<uint32_t>(table_size, kMaxQueueSize);
  unsigned pieces_left = kMaxQueueSize;
  uint32_t steps = 0;
  for (;;) {
    if (++steps > max_steps) {
      Fail("descriptor chain loops or is longer than its table");
      return false;
    }
    if (d.flags & kDescFlagIndirect) {
      Fail(in_indirect ? "indirect descriptor inside an indirect table"
                       : "indirect descriptor after the head of a chain");
      return false;
    }
    if (d.len == 0) {
      Fail("zero-length buffer");
      return false;
    }
    const bool writable = (d.flags & kDescFlagWrite) != 0;
    if (!writable && !elem->writable_.empty()) {
      Fail("readable buffer after a writable one");
      return false;
    }
    if (!Mapped(d.addr, d.len, writable, &pieces_left)) {
      Fail("buffer outside mapped guest memory");
      return false;
    }
    if (writable) {
      elem->writable_.push_back({d.addr, d.len});
      elem->writable_bytes_ += d.len;
    } else {
      elem->readable_.push_back({d.addr, d.len});
      elem->readable_bytes_ += d.len;
    }
    if (!(d.flags & kDescFlagNext)) return true;
    if (d.next >= table_size) {
      Fail("next descriptor index outside the table");
      return false;
    }
    if (!ReadDesc(table, d.next, &d)) {
      Fail("cannot read a descriptor");
      return false;
    }
  }
}

SplitVirtqueue::PopResult SplitVirtqueue::Pop(VirtqElement* elem) {
  elem->Clear();
  if (transport_->broken() || transport_->disabled() || avail_ == 0) {
    return PopResult::kEmpty;
  }
  if (shadow_avail_idx_ == last_avail_idx_) {
    uint16_t idx = 0;
    if (!Read16(avail_ + 2, &idx)) {
      return Fail("cannot read the available ring index");
    }
    shadow_avail_idx_ = idx;
    if (idx == last_avail_idx_) return PopResult::kEmpty;
  }
  if (inuse_ >= size_) return Fail("more elements in flight than queue size");
  uint16_t head = 0;
  const bool read =
      Read16(avail_ + kRingHeaderSize + 2u * (last_avail_idx_ % size_), &head);
  ++last_avail_idx_;  // consumed even when rejected, as QEMU
  if (!read) return Fail("cannot read the available ring");
  if (head >= size_) return Fail("available ring names a head out of range");
  if (transport_->HasFeature(kFeatureEventIdx) &&
      !Write16(used_ + kRingHeaderSize + kUsedElemSize * size_,
               last_avail_idx_)) {
    return Fail("cannot write avail_event");
  }
  if (!ReadChain(head, elem)) {
    elem->Clear();
    return PopResult::kError;
  }
  ++inuse_;
  return PopResult::kElement;
}

void SplitVirtqueue::Push(const VirtqElement& elem, uint32_t written) {
  if (inuse_ > 0) --inuse_;
  if (transport_->broken()) return;
  uint8_t raw[kUsedElemSize];
  StoreLe(raw, elem.head(), 4);
  StoreLe(raw + 4, written, 4);
  const uint64_t slot = used_idx_ % size_;
  if (dma_ == nullptr ||
      !dma_->Write(used_ + kRingHeaderSize + kUsedElemSize * slot, raw,
                   sizeof(raw), attrs_)
           .ok()) {
    transport_->DeviceError("cannot write the used ring");
    return;
  }
  const uint16_t old = used_idx_;
  ++used_idx_;
  if (!Write16(used_ + 2, used_idx_)) {
    transport_->DeviceError("cannot write the used ring index");
    return;
  }
  // The last signalled index fell behind by a whole wrap: the next
  // interrupt decision cannot rely on it.
  if (static_cast<int16_t>(used_idx_ - signalled_used_) <
      static_cast<uint16_t>(used_idx_ - old)) {
    signalled_used_valid_ = false;
  }
}

void SplitVirtqueue::Discard(const VirtqElement& /*elem*/) {
  if (inuse_ > 0) --inuse_;
}

bool SplitVirtqueue::ShouldNotify() {
  if (!transport_->HasFeature(kFeatureEventIdx)) {
    uint16_t flags = 0;
    (void)Read16(avail_, &flags);  // unreadable: interrupt
    return !(flags & kAvailFlagNoInterrupt);
  }
  const bool valid = signalled_used_valid_;
  const uint16_t old = signalled_used_;
  const uint16_t now = used_idx_;
  signalled_used_valid_ = true;
  signalled_used_ = now;
  if (!valid) return true;
  uint16_t used_event = 0;
  (void)Read16(avail_ + kRingHeaderSize + 2u * size_, &used_event);
  // VIRTIO 1.2 §2.7.10: interrupt when used_event lies in [old, now).
  return static_cast<uint16_t>(now - used_event - 1) <
         static_cast<uint16_t>(now - old);
}

size_t SplitVirtqueue::ReadFrom(const VirtqElement& elem, uint64_t offset,
                                void* buf, size_t len) {
  uint8_t* out = static_cast<uint8_t*>(buf);
  size_t done = 0;
  for (const VirtqSegment& s : elem.readable_) {
    if (done == len) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const size_t n = std::min<uint64_t>(len - done, s.len - offset);
    if (dma_ == nullptr) {
      std::memset(out + done, 0, n);
    } else {
      (void)dma_->Read(s.addr + offset, out + done, n, attrs_);
    }
    done += n;
    offset = 0;
  }
  return done;
}

size_t SplitVirtqueue::WriteTo(const VirtqElement& elem, uint64_t offset,
                               const void* buf, size_t len) {
  const uint8_t* in = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  for (const VirtqSegment& s : elem.writable_) {
    if (done == len) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const size_t n = std::min<uint64_t>(len - done, s.len - offset);
    if (dma_ != nullptr) {
      (void)dma_->Write(s.addr + offset, in + done, n, attrs_);
    }
    done += n;
    offset = 0;
  }
  return done;
}

}  // namespace viommu::hw::virtio
