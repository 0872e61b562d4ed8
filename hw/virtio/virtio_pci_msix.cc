// VirtioPciMsix: MSI-X table, PBA and capability (PCI Local Bus 3.0 §6.8.2)
// with QEMU 7.2's masking and pending-bit behaviour.
#include "hw/virtio/virtio_pci_msix.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::virtio {
namespace {

constexpr uint32_t kCapControlHi = 3;  // the control byte with the bits below
constexpr uint8_t kControlMaskAll = 0x40;
constexpr uint8_t kControlEnable = 0x80;
constexpr uint32_t kCapTable = 4;
constexpr uint32_t kCapPba = 8;
constexpr uint32_t kEntryAddrLo = 0;
constexpr uint32_t kEntryAddrHi = 4;
constexpr uint32_t kEntryData = 8;
constexpr uint32_t kEntryCtrl = 12;
constexpr uint32_t kEntryCtrlMasked = 0x1;

constexpr memory::AccessRules kValid{4, 8, false};
constexpr memory::AccessRules kImpl{4, 4, false};

}  // namespace

class VirtioPciMsix::TableOps final : public memory::MmioOps {
 public:
  explicit TableOps(VirtioPciMsix* msix) : msix_(msix) {}
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned,
                           memory::MemTxAttrs) override {
    *value = msix_->TableLong(static_cast<uint32_t>(offset));
    return memory::MemTxResult::Ok();
  }
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned,
                            memory::MemTxAttrs) override {
    msix_->TableWrite(static_cast<uint32_t>(offset),
                      static_cast<uint32_t>(value));
    return memory::MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return kValid; }
  memory::AccessRules impl() const override { return kImpl; }

 private:
  VirtioPciMsix* msix_;  // not owned, owns this
};

class VirtioPciMsix::PbaOps final : public memory::MmioOps {
 public:
  explicit PbaOps(VirtioPciMsix* msix) : msix_(msix) {}
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned,
                           memory::MemTxAttrs) override {
    *value = LoadLe(&msix_->pba_[offset], 4);
    return memory::MemTxResult::Ok();
  }
  // The PBA is read-only; writes are ignored.
  memory::MemTxResult Write(uint64_t, uint64_t, unsigned,
                            memory::MemTxAttrs) override {
    return memory::MemTxResult::Ok();
  }
  memory::AccessRules valid() const override { return kValid; }
  memory::AccessRules impl() const override { return kImpl; }

 private:
  VirtioPciMsix* msix_;  // not owned, owns this
};

VirtioPciMsix::VirtioPciMsix(unsigned vectors, SendFn send)
    : vectors_(vectors),
      send_(std::move(send)),
      table_(size_t{vectors} * kEntrySize),
      // Whole 64-bit words of pending bits.
      pba_((vectors + 63) / 64 * 8),
      use_count_(vectors),
      table_ops_(std::make_unique<TableOps>(this)),
      pba_ops_(std::make_unique<PbaOps>(this)) {
  VIOMMU_CHECK(vectors >= 1 && vectors <= 2048, "MSI-X vector count");
  // The table fills the low half of a 4 KiB BAR, the PBA starts the upper
  // half; a larger table pushes the PBA (and the BAR) up.
  pba_offset_ = std::max<uint32_t>(2048, vectors * kEntrySize);
  bar_size_ = std::bit_ceil(
      std::max<uint64_t>(4096, uint64_t{pba_offset_} + pba_.size()));
  Reset();
}

VirtioPciMsix::~VirtioPciMsix() = default;

std::shared_ptr<memory::MemoryRegion> VirtioPciMsix::CreateBar(
    memory::MemorySystem* sys) {
  auto bar = memory::MemoryRegion::CreateContainer(sys, "msix", bar_size_);
  bar->AddSubregion(0, memory::MemoryRegion::CreateMmio(
                           sys, "msix-table", table_.size(), table_ops_.get()));
  bar->AddSubregion(pba_offset_,
                    memory::MemoryRegion::CreateMmio(
                        sys, "msix-pba", pba_.size(), pba_ops_.get()));
  return bar;
}

void VirtioPciMsix::InitCapability(uint8_t* config, uint8_t* wmask, uint8_t cap,
                                   uint8_t bar) {
  config_ = config;
  cap_ = cap;
  StoreLe(&config[cap + 2], vectors_ - 1, 2);
  StoreLe(&config[cap + kCapTable], bar, 4);
  StoreLe(&config[cap + kCapPba], pba_offset_ | bar, 4);
  wmask[cap + kCapControlHi] |= kControlEnable | kControlMaskAll;
  function_masked_ = FunctionMasked();
}

bool VirtioPciMsix::enabled() const {
  return config_ != nullptr &&
         (config_[cap_ + kCapControlHi] & kControlEnable) != 0;
}

bool VirtioPciMsix::FunctionMasked() const {
  return !enabled() || (config_[cap_ + kCapControlHi] & kControlMaskAll) != 0;
}

bool VirtioPciMsix::VectorMasked(unsigned vector, bool function_masked) const {
  return function_masked ||
         (LoadLe(&table_[vector * kEntrySize + kEntryCtrl], 4) &
          kEntryCtrlMasked) != 0;
}

uint32_t VirtioPciMsix::TableLong(uint32_t offset) const {
  return static_cast<uint32_t>(LoadLe(&table_[offset], 4));
}

bool VirtioPciMsix::pending(unsigned vector) const {
  return vector < vectors_ && (pba_[vector / 8] >> (vector % 8)) & 1;
}

void VirtioPciMsix::SetPending(unsigned vector, bool pending) {
  const uint8_t bit = static_cast<uint8_t>(1u << (vector % 8));
  pba_[vector / 8] =
      pending ? (pba_[vector / 8] | bit) : (pba_[vector / 8] & ~bit);
}

void VirtioPciMsix::TableWrite(uint32_t offset, uint32_t value) {
  const unsigned vector = offset / kEntrySize;
  const bool was_masked = VectorMasked(vector, function_masked_);
  StoreLe(&table_[offset], value, 4);
  MaskUpdated(vector, was_masked);
}

void VirtioPciMsix::MaskUpdated(unsigned vector, bool was_masked) {
  if (was_masked && !VectorMasked(vector, function_masked_) &&
      pending(vector)) {
    SetPending(vector, false);
    Notify(vector);
  }
}

void VirtioPciMsix::Notify(unsigned vector) {
  if (vector >= vectors_) return;
  if (VectorMasked(vector, function_masked_)) {
    SetPending(vector, true);
    return;
  }
  const uint8_t* entry = &table_[vector * kEntrySize];
  const uint64_t address =
      LoadLe(entry + kEntryAddrLo, 4) | LoadLe(entry + kEntryAddrHi, 4) << 32;
  send_(address, static_cast<uint32_t>(LoadLe(entry + kEntryData, 4)));
}

bool VirtioPciMsix::Use(unsigned vector) {
  if (vector >= vectors_) return false;
  ++use_count_[vector];
  return true;
}

void VirtioPciMsix::Unuse(unsigned vector) {
  if (vector >= vectors_ || use_count_[vector] == 0) return;
  if (--use_count_[vector] == 0) SetPending(vector, false);
}

void VirtioPciMsix::UnuseAll() {
  for (unsigned v = 0; v < vectors_; ++v) {
    use_count_[v] = 0;
    SetPending(v, false);
  }
}

bool VirtioPciMsix::ConfigWritten(uint32_t offset, unsigned size) {
  if (config_ == nullptr) return false;
  const uint32_t control = cap_ + kCapControlHi;
  if (control < offset || control >= offset + size) return false;
  const bool was_masked = function_masked_;
  function_masked_ = FunctionMasked();
  if (!enabled()) return false;
  if (function_masked_ != was_masked) {
    for (unsigned v = 0; v < vectors_; ++v) {
      MaskUpdated(v, VectorMasked(v, was_masked));
    }
  }
  return true;
}

void VirtioPciMsix::Reset() {
  if (config_ != nullptr) {
    config_[cap_ + kCapControlHi] &=
        static_cast<uint8_t>(~(kControlEnable | kControlMaskAll));
  }
  std::fill(table_.begin(), table_.end(), 0);
  std::fill(pba_.begin(), pba_.end(), 0);
  for (unsigned v = 0; v < vectors_; ++v) {
    StoreLe(&table_[v * kEntrySize + kEntryCtrl], kEntryCtrlMasked, 4);
  }
  function_masked_ = true;
}

}  // namespace viommu::hw::virtio
