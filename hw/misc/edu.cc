#include "viommu/hw/misc/edu.h"

#include <utility>

#include "hw/misc/property_parse.h"
#include "viommu/util/status_macros.h"

namespace viommu::hw::misc {

// The engine's view of the PCI function: bus-master DMA, MSI or INTx.
class Edu::EngineBus final : public devcore::EduEngine::Bus {
 public:
  explicit EngineBus(Edu* edu) : edu_(edu) {}
  void Dma(uint64_t addr, uint8_t* buf, uint64_t len, bool to_ram) override {
    // As QEMU, the result is ignored: faults show only in the vIOMMU.
    if (to_ram) {
      (void)edu_->DmaWrite(addr, buf, len);
    } else {
      (void)edu_->DmaRead(addr, buf, len);
    }
  }
  // QEMU's edu_raise_irq / edu_lower_irq.
  void IrqRaised() override {
    if (edu_->msi_enabled()) {
      edu_->MsiNotify(0);
    } else {
      edu_->SetIntx(true);
    }
  }
  void IrqCleared() override {
    if (!edu_->msi_enabled()) edu_->SetIntx(false);
  }

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
      bus_(std::make_unique<EngineBus>(this)),
      // BAR0: valid and implemented sizes 4..8, as QEMU's edu_mmio_ops,
      // behind the re-entrancy guard.
      ops_(std::make_unique<GuardedMmioOps>(
          [this](uint64_t offset, unsigned size) {
            return engine_->Read(offset, size);
          },
          [this](uint64_t offset, uint64_t value, unsigned size) {
            engine_->Write(offset, value, size);
          },
          memory::AccessRules{4, 8, false})) {}

Edu::~Edu() = default;

absl::Status Edu::Realize() {
  mmio_ = memory::MemoryRegion::CreateMmio(memory(), "edu-mmio", kBarSize,
                                           ops_.get());
  RegisterBar(0, pci::BarType::kMem32, /*prefetchable=*/false, mmio_);
  // Registers survive unplug and plug, as QEMU's (no reset handler).
  if (engine_ == nullptr) {
    engine_ = std::make_unique<devcore::EduEngine>(bus_.get(), clock(),
                                                   props_.dma_mask);
  }
  // QEMU: msi_init(pdev, 0, 1, true, false).
  return AddMsiCapability(/*vectors=*/1, /*is_64bit=*/true).status();
}

void Edu::Unrealize() {
  if (engine_ != nullptr) engine_->StopDma();
}

void Edu::PowerOnReset() {
  if (engine_ != nullptr) {
    // A new engine: zeroed registers, buffer and refused count; destroying
    // the old one cancels its DMA.
    engine_ = std::make_unique<devcore::EduEngine>(bus_.get(), clock(),
                                                   props_.dma_mask);
  }
  if (!msi_enabled()) SetIntx(false);
  ops_->ResetBlockedCount();
}

uint64_t Edu::refused_dma_count() const {
  return engine_ != nullptr ? engine_->refused_dma_count() : 0;
}

}  // namespace viommu::hw::misc
