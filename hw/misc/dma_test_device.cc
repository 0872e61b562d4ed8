#include "viommu/hw/misc/dma_test_device.h"

#include "hw/misc/property_parse.h"
#include "viommu/util/le_bytes.h"

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

// Whether [offset, offset + size) lies in the buffer window. The memory
// core only passes aligned 1..8-byte accesses inside BAR0; checked anyway,
// as the buffer must never be overrun.
bool InBuffer(uint64_t offset, unsigned size) {
  return offset >= DmaTestDevice::kBufferOffset && size >= 1 && size <= 8 &&
         offset - DmaTestDevice::kBufferOffset <=
             DmaTestDevice::kBufferSize - size;
}

}  // namespace

DmaTestDevice::DmaTestDevice()
    : PciDevice("dma-testdev", {.vendor_id = 0x1b36,
                                .device_id = 0x10f0,
                                .revision = 0x01,
                                .class_code = 0x00ff00}),
      ops_(std::make_unique<GuardedMmioOps>(
          [this](uint64_t offset, unsigned size) {
            return RegRead(offset, size);
          },
          [this](uint64_t offset, uint64_t value, unsigned size) {
            RegWrite(offset, value, size);
          },
          memory::AccessRules{1, 8, false})) {}

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
    return LoadLe(buffer_.data() + (offset - kBufferOffset), size);
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
    StoreLe(buffer_.data() + (offset - kBufferOffset), value, size);
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
