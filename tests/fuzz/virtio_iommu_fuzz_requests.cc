// virtio_iommu fuzz target: the requests and descriptor chains the input
// asks for, well-formed or malformed, queued into the current batch.
#include "tests/fuzz/virtio_iommu_fuzz_program.h"

namespace viommu::fuzz::virtio_iommu_target {

uint64_t Program::PickIova() {
  const uint8_t k = in_.U8();
  switch (k & 7) {
    case 0:
    case 1:
      return kDataFirst + uint64_t{in_.U8()} * 0x1000;
    case 2:
      return last_iova_;
    case 3:
      return last_iova_ + last_size_;
    case 4:
      return kMsiFirst - 0x2000 + uint64_t{in_.U8()} * 0x1000;
    case 5:
      return uint64_t{in_.U16()} << 12;
    case 6:
      return ~uint64_t{0} - uint64_t{in_.U8()} * 0x1000 - 0xfff;
    default:
      return in_.U64();
  }
}

void Program::BuildRequest(std::vector<uint8_t>* out) {
  const uint8_t k = in_.U8();
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
      out->push_back(static_cast<uint8_t>(v >> 8 * i));
  };
  auto domain = [&]() -> uint32_t {
    const uint8_t d = in_.U8();
    if (d < 0xf0) return d & 3;
    if (d < 0xf8) return 0xffffffff;
    return in_.U32();
  };
  auto endpoint = [&]() -> uint32_t {
    const uint8_t e = in_.U8();
    switch (e & 7) {
      case 0:
      case 1:
        return kEduDevfn;
      case 2:
        return e & 8 ? kVfioDevfn : kTestDevfn;
      case 3:
        return e & 8 ? 0x00 : kIommuDevfn;
      case 4:
        return mach_->known()[(e >> 3) % mach_->known().size()];
      case 5:
        return 0x10000 | kEduDevfn;
      case 6:
        return in_.U16();
      default:
        return in_.U32();
    }
  };
  // Types: ATTACH/DETACH/MAP/UNMAP/PROBE, MAP and ATTACH twice as likely.
  static constexpr uint8_t kTypes[8] = {
      vi::kReqAttach, vi::kReqAttach, vi::kReqDetach, vi::kReqMap,
      vi::kReqMap,    vi::kReqUnmap,  vi::kReqProbe,  0};
  uint8_t type = kTypes[k & 7];
  if (type == 0) type = in_.U8();  // unknown (or any) type
  put(type, 1);
  put(k & 0x80 ? in_.U8() : 0, 3);  // head reserved bytes
  switch (type) {
    case vi::kReqAttach: {
      put(domain(), 4);
      put(endpoint(), 4);
      const uint8_t f = in_.U8();
      put(f < 0xe0 ? f & 1 : f, 4);
      put(k & 0x40 ? in_.U32() : 0, 4);
      break;
    }
    case vi::kReqDetach:
      put(domain(), 4);
      put(endpoint(), 4);
      put(0, 8);
      break;
    case vi::kReqMap:
    case vi::kReqUnmap: {
      put(domain(), 4);
      const uint64_t first = PickIova();
      const uint8_t s = in_.U8();
      uint64_t size;
      switch (s & 7) {
        case 0:
        case 1:
        case 2:
          size = static_cast<uint64_t>((s >> 3) + 1) * 0x1000;
          break;
        case 3:
          size = 0x20'0000;
          break;
        case 4:
          size = in_.U16() + 1;  // unaligned
          break;
        case 5:
          size = 0;  // inverted (last = first - 1)
          break;
        case 6:
          size = ~first + 1;  // to the top
          break;
        default:
          size = in_.U64();
          break;
      }
      uint64_t phys = 0;
      if (type == vi::kReqMap) {
        const uint8_t p = in_.U8();
        phys = kDataFirst + static_cast<uint64_t>(p & 0x7f) * 0x1000;
        if (p & 0x80) phys = in_.U64();
      }
      last_iova_ = first;
      last_size_ = size;
      put(first, 8);
      put(first + size - 1, 8);
      if (type == vi::kReqMap) {
        put(phys, 8);
        const uint8_t f = in_.U8();
        static constexpr uint32_t kFlags[8] = {3, 3, 1, 2, 0, 4, 7, 8};
        put(f < 0xf8 ? kFlags[f & 7] : in_.U32(), 4);
      } else {
        put(0, 4);
      }
      break;
    }
    case vi::kReqProbe:
      put(endpoint(), 4);
      out->resize(out->size() + 64, 0);
      break;
    default: {
      const uint8_t n = in_.U8() & 0x3f;
      for (uint8_t i = 0; i < n; ++i) put(in_.U8(), 1);
      break;
    }
  }
  // The readable part: exact, short or longer.
  const uint8_t len = in_.U8();
  if (len >= 0xe0) {
    out->resize(
        std::max<size_t>(4, out->size() - 1 - (len & 0x1f) % out->size()));
  } else if (len >= 0xc0) {
    out->resize(out->size() + (len & 0x1f) + 1, 0);
  }
}

void Program::QueueRequest() {
  if (!ready_) return;
  const uint8_t shape = in_.U8();
  const bool indirect = shape & 1;
  const bool split_out = shape & 2;
  const bool split_in = shape & 4;
  if (!Room(indirect ? 1 : 4)) Kick();
  Pending p;
  BuildRequest(&p.out);
  static constexpr uint32_t kIn[8] = {4, 4, 4, 16, 516, 516, 600, 515};
  uint32_t in_size = kIn[(shape >> 3) & 7];
  if (p.out[0] == vi::kReqProbe && !(shape & 0x80)) in_size = 516;
  p.in_size = in_size;
  const size_t slot = batch_.size();
  const uint64_t out_addr = kOutBufs + slot * 0x400;
  const uint64_t in_addr = kInBufs + slot * 0x800;
  Ram(out_addr, p.out.data(), p.out.size());
  static const uint8_t poison[0x800] = {};
  Ram(in_addr, poison, in_size);
  // Segments.
  struct Seg {
    uint64_t addr;
    uint32_t len;
    bool write;
  };
  std::vector<Seg> segs;
  const uint32_t out_len = static_cast<uint32_t>(p.out.size());
  if (split_out && out_len > 1) {
    const uint32_t cut = 1 + (shape >> 6) % (out_len - 1);
    segs.push_back({out_addr, cut, false});
    segs.push_back({out_addr + cut, out_len - cut, false});
  } else {
    segs.push_back({out_addr, out_len, false});
  }
  if (split_in && in_size > 1) {
    const uint32_t cut = in_size > 4 ? 2 : 1;
    segs.push_back({in_addr, cut, true});
    segs.push_back({in_addr + cut, in_size - cut, true});
    p.in_addr[0] = in_addr;
    p.in_len[0] = cut;
    p.in_addr[1] = in_addr + cut;
    p.in_len[1] = in_size - cut;
  } else {
    segs.push_back({in_addr, in_size, true});
    p.in_addr[0] = in_addr;
    p.in_len[0] = in_size;
  }
  if (indirect) {
    const uint64_t table = kIndirect + slot * 0x400;
    for (size_t i = 0; i < segs.size(); ++i) {
      const bool more = i + 1 < segs.size();
      Desc(table, static_cast<uint16_t>(i), segs[i].addr, segs[i].len,
           (segs[i].write ? vio::kDescFlagWrite : 0) |
               (more ? vio::kDescFlagNext : 0),
           static_cast<uint16_t>(i + 1));
    }
    p.head = desc_used_;
    Desc(kReqDesc, desc_used_++, table, static_cast<uint32_t>(segs.size() * 16),
         vio::kDescFlagIndirect, 0);
  } else {
    p.head = desc_used_;
    for (size_t i = 0; i < segs.size(); ++i) {
      const bool more = i + 1 < segs.size();
      const uint16_t d = desc_used_++;
      Desc(kReqDesc, d, segs[i].addr, segs[i].len,
           (segs[i].write ? vio::kDescFlagWrite : 0) |
               (more ? vio::kDescFlagNext : 0),
           static_cast<uint16_t>(d + 1));
    }
  }
  Put16(kReqAvail + 4 + 2u * (avail_idx_ % qsize_), p.head);
  ++avail_idx_;
  Put16(kReqAvail + 2, avail_idx_);
  batch_.push_back(std::move(p));
  if (batch_.size() == kMaxBatch) Kick();
}

// A chain Pop or the request handler must reject: the device needs a
// reset and answers nothing more.
void Program::QueueMalformed() {
  if (!ready_) return;
  if (!Room(4)) Kick();
  const uint8_t k = in_.U8();
  const size_t slot = batch_.size();
  const uint64_t out_addr = kOutBufs + slot * 0x400;
  const uint64_t in_addr = kInBufs + slot * 0x800;
  const uint64_t table = kIndirect + slot * 0x400;
  const uint16_t h = desc_used_;
  uint16_t head = h;
  const uint16_t w = vio::kDescFlagWrite, nx = vio::kDescFlagNext;
  switch (k % 10) {
    case 0:  // loop: h -> h+1 -> h
      Desc(kReqDesc, h, out_addr, 20, nx, h + 1);
      Desc(kReqDesc, h + 1, in_addr, 4, w | nx, h);
      desc_used_ += 2;
      break;
    case 1:  // oversize: the indirect table's last entry goes on
      for (uint16_t i = 0; i < 8; ++i) {
        Desc(table, i, i < 4 ? out_addr : in_addr, 4,
             static_cast<uint16_t>((i < 4 ? 0 : w) | nx), i + 1);
      }
      Desc(kReqDesc, h, table, 8 * 16, vio::kDescFlagIndirect, 0);
      desc_used_ += 1;
      break;
    case 2:  // head out of range
      head = static_cast<uint16_t>(qsize_ + (k >> 4));
      break;
    case 3:  // zero-length buffer
      Desc(kReqDesc, h, out_addr, 0, nx, h + 1);
      Desc(kReqDesc, h + 1, in_addr, 4, w, 0);
      desc_used_ += 2;
      break;
    case 4:  // readable after writable
      Desc(kReqDesc, h, in_addr, 4, w | nx, h + 1);
      Desc(kReqDesc, h + 1, out_addr, 20, 0, 0);
      desc_used_ += 2;
      break;
    case 5:  // indirect inside indirect
      Desc(table, 0, table + 0x200, 32, vio::kDescFlagIndirect, 0);
      Desc(kReqDesc, h, table, 16, vio::kDescFlagIndirect, 0);
      desc_used_ += 1;
      break;
    case 6:  // indirect table length 0 or not a multiple of 16
      Desc(kReqDesc, h, table, (k & 0x10) ? 0 : 24, vio::kDescFlagIndirect, 0);
      desc_used_ += 1;
      break;
    case 7:  // a buffer outside RAM and every MMIO region
      Desc(kReqDesc, h, uint64_t{1} << 40, 20, nx, h + 1);
      Desc(kReqDesc, h + 1, in_addr, 4, w, 0);
      desc_used_ += 2;
      break;
    case 8:  // readable part under 4 bytes (or none)
      if (k & 0x10) {
        Desc(kReqDesc, h, in_addr, 4, w, 0);
        desc_used_ += 1;
      } else {
        Desc(kReqDesc, h, out_addr, 1 + (k >> 6) % 3, nx, h + 1);
        Desc(kReqDesc, h + 1, in_addr, 4, w, 0);
        desc_used_ += 2;
      }
      break;
    default:  // writable part under 4 bytes (or none)
      Ram(out_addr, "\x01\0\0\0", 4);
      if (k & 0x10) {
        Desc(kReqDesc, h, out_addr, 20, 0, 0);
        desc_used_ += 1;
      } else {
        Desc(kReqDesc, h, out_addr, 20, nx, h + 1);
        Desc(kReqDesc, h + 1, in_addr, 1 + (k >> 6) % 3, w, 0);
        desc_used_ += 2;
      }
      break;
  }
  Pending p;
  p.head = head;
  p.malformed = true;
  Put16(kReqAvail + 4 + 2u * (avail_idx_ % qsize_), head);
  ++avail_idx_;
  Put16(kReqAvail + 2, avail_idx_);
  batch_.push_back(std::move(p));
}

}  // namespace viommu::fuzz::virtio_iommu_target
