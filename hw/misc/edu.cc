#include "viommu/hw/misc/edu.h"

#include <utility>

#include "hw/misc/property_parse.h"
#include "viommu/util/status_macros.h"

namespace viommu::hw::misc {
namespace {

constexpr uint32_t kId = 0x010000ed;
constexpr uint32_t kStatusComputing = 0x01;
constexpr uint32_t kStatusIrqFact = 0x80;
constexpr uint32_t kFactIrq = 0x001;
constexpr uint32_t kDmaIrq = 0x100;
constexpr uint64_t kDmaRun = 0x1;
constexpr uint64_t kDmaToRam = 0x2;  // direction bit: device -> RAM
constexpr uint64_t kDmaRaiseIrq = 0x4;
constexpr int64_t kNsPerMs = 1'000'000;
constexpr int64_t kDmaDelayMs = 100;

// BAR0 offsets (QEMU's edu_mmio_read/edu_mmio_write cases).
enum Reg : uint64_t {
  kRegId = 0x00,
  kRegLiveness = 0x04,
  kRegFactorial = 0x08,
  kRegStatus = 0x20,
  kRegIrqStatus = 0x24,
  kRegIrqRaise = 0x60,
  kRegIrqAck = 0x64,
  kRegDmaSrc = 0x80,
  kRegDmaDst = 0x88,
  kRegDmaCount = 0x90,
  kRegDmaCmd = 0x98,
};

bool AccessAllowed(uint64_t offset, unsigned size) {
  return offset < 0x80 ? size == 4 : (size == 4 || size == 8);
}

uint64_t AllOnes(unsigned size) {
  return size >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
}

// n! mod 2^32, as QEMU's worker loop over uint32_t. The product is 0 once
// it has 32 factors of two (n >= 34), so the loop stops there instead of
// running up to 2^32 times for a hostile n.
uint32_t Factorial(uint32_t n) {
  uint32_t f = 1;
  for (uint32_t i = n; i > 0 && f != 0; --i) f *= i;
  return f;
}

}  // namespace

// BAR0's MmioOps: valid and implemented sizes 4..8, as QEMU's edu_mmio_ops,
// behind the re-entrancy guard.
class Edu::Registers final : public memory::MmioOps {
 public:
  explicit Registers(Edu* edu) : edu_(edu) {}
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs) override {
    if (edu_->in_mmio_) {
      ++edu_->blocked_reentrant_count_;
      *value = AllOnes(size);
      return memory::MemTxResult::AccessError();
    }
    edu_->in_mmio_ = true;
    *value = edu_->MmioRead(offset, size);
    edu_->in_mmio_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs) override {
    if (edu_->in_mmio_) {
      ++edu_->blocked_reentrant_count_;
      return memory::MemTxResult::AccessError();
    }
    edu_->in_mmio_ = true;
    edu_->MmioWrite(offset, value, size);
    edu_->in_mmio_ = false;
    return memory::MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return {4, 8, false}; }
  memory::AccessRules impl() const override { return {4, 8, false}; }

 private:
  Edu* edu_;  // not owned, owns this
};

absl::StatusOr<std::unique_ptr<Edu>> Edu::Create(const Properties& props) {
  return std::unique_ptr<Edu>(new Edu(props));
}

absl::StatusOr<Edu::Properties> Edu::ParseProperties(
    const absl::btree_map<std::string, std::string>& props) {
  Properties p;
  for (const auto& [key, value] : props) {
    if (key == "dma_mask") {
      VIOMMU_ASSIGN_OR_RETURN(p.dma_mask, ParseU64Property("edu", key, value));
    } else {
      return UnknownProperty("edu", key);
    }
  }
  return p;
}

absl::StatusOr<std::unique_ptr<Edu>> Edu::CreateFromProperties(
    const absl::btree_map<std::string, std::string>& props) {
  VIOMMU_ASSIGN_OR_RETURN(Properties p, ParseProperties(props));
  return Create(p);
}

Edu::Edu(const Properties& props)
    : PciDevice("edu", {.vendor_id = 0x1234,
                        .device_id = 0x11e8,
                        .revision = 0x10,
                        .class_code = 0x00ff00,
                        .interrupt_pin = 1}),
      props_(props),
      ops_(std::make_unique<Registers>(this)) {}

Edu::~Edu() = default;

absl::Status Edu::Realize() {
  mmio_ = memory::MemoryRegion::CreateMmio(memory(), "edu-mmio", kBarSize,
                                           ops_.get());
  RegisterBar(0, pci::BarType::kMem32, /*prefetchable=*/false, mmio_);
  dma_timer_ = std::make_unique<Timer>(clock(), [this] { DmaTimerFired(); });
  // QEMU: msi_init(pdev, 0, 1, true, false).
  return AddMsiCapability(/*vectors=*/1, /*is_64bit=*/true).status();
}

void Edu::Unrealize() {
  dma_timer_.reset();
  dma_cmd_ &= ~kDmaRun;
}

uint64_t Edu::MmioRead(uint64_t offset, unsigned size) {
  if (!AccessAllowed(offset, size)) return AllOnes(size);
  switch (offset) {
    case kRegId:
      return kId;
    case kRegLiveness:
      return liveness_;
    case kRegFactorial:
      return factorial_;
    case kRegStatus:
      return status_;
    case kRegIrqStatus:
      return irq_status_;
    case kRegDmaSrc:
      return dma_src_;
    case kRegDmaDst:
      return dma_dst_;
    case kRegDmaCount:
      return dma_count_;
    case kRegDmaCmd:
      return dma_cmd_;
    default:
      return AllOnes(size);
  }
}

void Edu::MmioWrite(uint64_t offset, uint64_t value, unsigned size) {
  if (!AccessAllowed(offset, size)) return;
  switch (offset) {
    case kRegLiveness:
      liveness_ = ~static_cast<uint32_t>(value);
      break;
    case kRegFactorial:
      if (status_ & kStatusComputing) break;
      factorial_ = Factorial(static_cast<uint32_t>(value));
      if (status_ & kStatusIrqFact) RaiseIrq(kFactIrq);
      break;
    case kRegStatus:
      status_ = (value & kStatusIrqFact) ? (status_ | kStatusIrqFact)
                                         : (status_ & ~kStatusIrqFact);
      break;
    case kRegIrqRaise:
      RaiseIrq(static_cast<uint32_t>(value));
      break;
    case kRegIrqAck:
      LowerIrq(static_cast<uint32_t>(value));
      break;
    case kRegDmaSrc:
      WriteDmaRegister(&dma_src_, value, false);
      break;
    case kRegDmaDst:
      WriteDmaRegister(&dma_dst_, value, false);
      break;
    case kRegDmaCount:
      WriteDmaRegister(&dma_count_, value, false);
      break;
    case kRegDmaCmd:
      if (value & kDmaRun) WriteDmaRegister(&dma_cmd_, value, true);
      break;
    default:
      break;
  }
}

// QEMU's dma_rw for a write.
void Edu::WriteDmaRegister(uint64_t* reg, uint64_t value, bool starts_timer) {
  if (dma_cmd_ & kDmaRun) return;
  *reg = value;
  if (starts_timer && dma_timer_ != nullptr) {
    const int64_t now_ms = clock()->now_ns() / kNsPerMs;
    dma_timer_->ArmAt((now_ms + kDmaDelayMs) * kNsPerMs);
  }
}

// QEMU's edu_dma_timer, with the buffer range enforced.
void Edu::DmaTimerFired() {
  if (!(dma_cmd_ & kDmaRun)) return;
  const bool to_ram = dma_cmd_ & kDmaToRam;
  const uint64_t dev = to_ram ? dma_src_ : dma_dst_;
  const uint64_t ram = (to_ram ? dma_dst_ : dma_src_) & props_.dma_mask;
  const bool in_buffer = dev >= kDmaStart && dma_count_ <= kDmaSize &&
                         dev - kDmaStart <= kDmaSize - dma_count_;
  if (!in_buffer) {
    ++refused_dma_count_;
  } else if (to_ram) {
    // As QEMU, the result is ignored: faults show only in the vIOMMU.
    (void)DmaWrite(ram, dma_buf_.data() + (dev - kDmaStart), dma_count_);
  } else {
    (void)DmaRead(ram, dma_buf_.data() + (dev - kDmaStart), dma_count_);
  }
  dma_cmd_ &= ~kDmaRun;
  if (dma_cmd_ & kDmaRaiseIrq) RaiseIrq(kDmaIrq);
}

void Edu::RaiseIrq(uint32_t bits) {
  irq_status_ |= bits;
  if (irq_status_ == 0) return;
  if (msi_enabled()) {
    MsiNotify(0);
  } else {
    SetIntx(true);
  }
}

void Edu::LowerIrq(uint32_t bits) {
  irq_status_ &= ~bits;
  if (irq_status_ == 0 && !msi_enabled()) SetIntx(false);
}

}  // namespace viommu::hw::misc
