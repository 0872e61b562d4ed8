// The edu register file and DMA state machine: QEMU's edu_mmio_read,
// edu_mmio_write, dma_rw and edu_dma_timer (see edu_engine.h).
#include "viommu/devcore/edu_engine.h"

#include "viommu/util/le_bytes.h"

namespace viommu::devcore {
namespace {

constexpr uint32_t kStatusComputing = 0x01;
constexpr uint32_t kStatusIrqFact = 0x80;
constexpr uint32_t kFactIrq = 0x001;
constexpr uint32_t kDmaIrq = 0x100;
constexpr uint64_t kDmaRun = 0x1;
constexpr uint64_t kDmaToRam = 0x2;  // direction: device -> RAM
constexpr uint64_t kDmaRaiseIrq = 0x4;
constexpr int64_t kNsPerMs = 1'000'000;

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

// n! mod 2^32, as QEMU's worker loop over uint32_t. The product is 0 once
// it has 32 factors of two (n >= 34), so the loop stops there instead of
// running up to 2^32 times for a hostile n.
uint32_t Factorial(uint32_t n) {
  uint32_t f = 1;
  for (uint32_t i = n; i > 0 && f != 0; --i) f *= i;
  return f;
}

}  // namespace

EduEngine::EduEngine(Bus* bus, DeviceTimers* timers, uint64_t dma_mask)
    : bus_(bus), timers_(timers), dma_mask_(dma_mask) {
  if (timers_ != nullptr) {
    dma_timer_ = timers_->CreateTimer([this] { RunDma(); });
  }
}

uint64_t EduEngine::Read(uint64_t offset, unsigned size) const {
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

void EduEngine::Write(uint64_t offset, uint64_t value, unsigned size) {
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

// QEMU's dma_rw for a write; a 4-byte access arrives zero-extended.
void EduEngine::WriteDmaRegister(uint64_t* reg, uint64_t value,
                                 bool starts_dma) {
  if (dma_cmd_ & kDmaRun) return;
  *reg = value;
  if (!starts_dma) return;
  if (dma_timer_ == nullptr) {
    RunDma();
    return;
  }
  // Millisecond virtual clock, as QEMU's qemu_clock_get_ms.
  const int64_t now_ms = timers_->NowNs() / kNsPerMs;
  dma_timer_->ArmAt((now_ms + kDmaDelayMs) * kNsPerMs);
}

// QEMU's edu_dma_timer, with the buffer range enforced.
void EduEngine::RunDma() {
  if (!(dma_cmd_ & kDmaRun)) return;
  const bool to_ram = dma_cmd_ & kDmaToRam;
  const uint64_t dev = to_ram ? dma_src_ : dma_dst_;
  const uint64_t ram = (to_ram ? dma_dst_ : dma_src_) & dma_mask_;
  const bool in_buffer = dev >= kDmaStart && dma_count_ <= kDmaSize &&
                         dev - kDmaStart <= kDmaSize - dma_count_;
  if (in_buffer) {
    bus_->Dma(ram, dma_buf_.data() + (dev - kDmaStart), dma_count_, to_ram);
  } else {
    ++refused_dma_count_;
  }
  dma_cmd_ &= ~kDmaRun;
  if (dma_cmd_ & kDmaRaiseIrq) RaiseIrq(kDmaIrq);
}

void EduEngine::RaiseIrq(uint32_t bits) {
  irq_status_ |= bits;
  if (irq_status_ != 0) bus_->IrqRaised();
}

void EduEngine::LowerIrq(uint32_t bits) {
  irq_status_ &= ~bits;
  if (irq_status_ == 0) bus_->IrqCleared();
}

void EduEngine::Reset() {
  if (dma_timer_ != nullptr) dma_timer_->Cancel();
  liveness_ = 0;
  factorial_ = 0;
  status_ = 0;
  irq_status_ = 0;
  dma_src_ = dma_dst_ = dma_count_ = dma_cmd_ = 0;
  dma_buf_.fill(0);
}

void EduEngine::StopDma() {
  if (dma_timer_ != nullptr) dma_timer_->Cancel();
  dma_cmd_ &= ~kDmaRun;
}

}  // namespace viommu::devcore
