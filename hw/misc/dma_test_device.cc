#include "viommu/hw/misc/dma_test_device.h"

#include "hw/misc/property_parse.h"

namespace viommu::hw::misc {
namespace {

enum Reg : uint64_t {
  kRegId = 0x00,
  kRegIova = 0x08,
  kRegIovaHi = 0x0c,
  kRegLen = 0x10,
  kRegOffset = 0x14,
  kRegCmd = 0x18,
  kRegResult = 0x1c,
  kRegCount = 0x20,
  kRegRid = 0x24,
};
constexpr uint32_t kCmdRead = 1;
constexpr uint32_t kCmdWrite = 2;

uint64_t AllOnes(unsigned size) {
  return size >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
}

// Whether [offset, offset + size) lies in the buffer window. The memory
// core only passes aligned 1..8-byte accesses inside BAR0; checked anyway,
// as the buffer must never be overrun.
bool InBuffer(uint64_t offset, unsigned size) {
  return offset >= DmaTestDevice::kBufferOffset && size >= 1 && size <= 8 &&
         offset - DmaTestDevice::kBufferOffset <=
             DmaTestDevice::kBufferSize - size;
}

}  // namespace

class DmaTestDevice::Registers final : public memory::MmioOps {
 public:
  explicit Registers(DmaTestDevice* dev) : dev_(dev) {}
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs) override {
    if (dev_->in_mmio_) {
      ++dev_->blocked_reentrant_count_;
      *value = AllOnes(size);
      return memory::MemTxResult::AccessError();
    }
    dev_->in_mmio_ = true;
    *value = dev_->RegRead(offset, size);
    dev_->in_mmio_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs) override {
    if (dev_->in_mmio_) {
      ++dev_->blocked_reentrant_count_;
      return memory::MemTxResult::AccessError();
    }
    dev_->in_mmio_ = true;
    dev_->RegWrite(offset, value, size);
    dev_->in_mmio_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return {1, 8, false}; }
  memory::AccessRules impl() const override { return {1, 8, false}; }

 private:
  DmaTestDevice* dev_;  // not owned, owns this
};

DmaTestDevice::DmaTestDevice()
    : PciDevice("dma-testdev", {.vendor_id = 0x1b36,
                                .device_id = 0x10f0,
                                .revision = 0x01,
                                .class_code = 0x00ff00}),
      ops_(std::make_unique<Registers>(this)) {}

DmaTestDevice::~DmaTestDevice() = default;

absl::StatusOr<std::unique_ptr<DmaTestDevice>>
DmaTestDevice::CreateFromProperties(
    const absl::btree_map<std::string, std::string>& props) {
  if (!props.empty()) {
    return UnknownProperty("dma-testdev", props.begin()->first);
  }
  return std::make_unique<DmaTestDevice>();
}

absl::Status DmaTestDevice::Realize() {
  mmio_ = memory::MemoryRegion::CreateMmio(memory(), "dma-testdev-mmio",
                                           kBarSize, ops_.get());
  RegisterBar(0, pci::BarType::kMem32, /*prefetchable=*/false, mmio_);
  return absl::OkStatus();
}

void DmaTestDevice::Reset() {
  PciDevice::Reset();
  iova_ = 0;
  len_ = offset_ = count_ = 0;
  result_ = kResultIdle;
  buffer_.fill(0);
}

uint64_t DmaTestDevice::RegRead(uint64_t offset, unsigned size) {
  if (offset >= kBufferOffset) {
    if (!InBuffer(offset, size)) return AllOnes(size);
    const uint8_t* p = buffer_.data() + (offset - kBufferOffset);
    uint64_t v = 0;
    for (unsigned i = 0; i < size; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
  }
  if (size == 8 && offset == kRegIova) return iova_;
  if (size != 4) return AllOnes(size);
  switch (offset) {
    case kRegId:
      return kId;
    case kRegIova:
      return static_cast<uint32_t>(iova_);
    case kRegIovaHi:
      return static_cast<uint32_t>(iova_ >> 32);
    case kRegLen:
      return len_;
    case kRegOffset:
      return offset_;
    case kRegResult:
      return result_;
    case kRegCount:
      return count_;
    case kRegRid:
      return requester_id();
    case kRegCmd:
      return 0;
    default:
      return AllOnes(4);
  }
}

void DmaTestDevice::RegWrite(uint64_t offset, uint64_t value, unsigned size) {
  if (offset >= kBufferOffset) {
    if (!InBuffer(offset, size)) return;
    uint8_t* p = buffer_.data() + (offset - kBufferOffset);
    for (unsigned i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(value >> (8 * i));
    return;
  }
  if (size == 8 && offset == kRegIova) {
    iova_ = value;
    return;
  }
  if (size != 4) return;
  const uint32_t v = static_cast<uint32_t>(value);
  switch (offset) {
    case kRegIova:
      iova_ = (iova_ & ~uint64_t{0xffffffff}) | v;
      break;
    case kRegIovaHi:
      iova_ = (iova_ & 0xffffffff) | uint64_t{v} << 32;
      break;
    case kRegLen:
      len_ = v;
      break;
    case kRegOffset:
      offset_ = v;
      break;
    case kRegCmd:
      Execute(v);
      break;
    default:
      break;
  }
}

void DmaTestDevice::Execute(uint32_t cmd) {
  ++count_;
  if (cmd != kCmdRead && cmd != kCmdWrite) {
    result_ = kResultBadCommand;
    return;
  }
  if (len_ == 0 || len_ > kBufferSize || offset_ > kBufferSize - len_) {
    result_ = kResultBadLength;
    return;
  }
  uint8_t* data = buffer_.data() + offset_;
  memory::MemTxResult r = cmd == kCmdRead ? DmaRead(iova_, data, len_)
                                          : DmaWrite(iova_, data, len_);
  result_ = r.bits();
}

}  // namespace viommu::hw::misc
