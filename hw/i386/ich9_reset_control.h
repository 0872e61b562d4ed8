// hw/i386/ich9_reset_control.h — the ICH9 reset control register (RST_CNT,
// I/O port 0xcf9), which shares the dword at 0xcf8 with the PCI
// configuration address register.
//
//   Ich9ResetControl rcr([&machine] { machine.RequestGuestReset(); });
//   Q35ConfigPorts ports(&config_ports, &rcr);
//   io_root->AddSubregion(0xcf8, MemoryRegion::CreateMmio(
//       &sys, "pci-conf", 8, &ports));
//   // outb 0xcf9 0x6: hard reset of the machine
//
// Semantics, as QEMU 7.2 answers (tests/conformance/scenarios/rcr.qtest):
// a byte write with RST_CPU (bit 2) requests a reset and leaves the
// register 0 (the reset clears it); otherwise SYS_RST and FULL_RST (bits
// 1 and 3) are kept and the rest dropped. Byte reads return the register.
// Every other access to 0xcf8..0xcff is the PCI configuration ports'.
//
// Threading: control context only.
#ifndef VIOMMU_HW_I386_ICH9_RESET_CONTROL_H_
#define VIOMMU_HW_I386_ICH9_RESET_CONTROL_H_

#include <cstdint>
#include <functional>
#include <utility>

#include "viommu/memory/mem_tx.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::hw {

class Ich9ResetControl {
 public:
  static constexpr uint8_t kSysRst = 1 << 1;
  static constexpr uint8_t kRstCpu = 1 << 2;
  static constexpr uint8_t kFullRst = 1 << 3;

  // `request_reset` runs synchronously inside the write that asks for it.
  explicit Ich9ResetControl(std::function<void()> request_reset)
      : request_reset_(std::move(request_reset)) {}

  uint8_t Read() const { return value_; }
  void Write(uint8_t value);
  void Reset() { value_ = 0; }

 private:
  std::function<void()> request_reset_;
  uint8_t value_ = 0;
};

// The 8 ports at 0xcf8: byte accesses at 0xcf9 go to the reset control
// register, everything else to `config` (PciConfigPorts).
class Q35ConfigPorts final : public memory::MmioOps {
 public:
  // Neither is owned; both outlive this.
  Q35ConfigPorts(memory::MmioOps* config, Ich9ResetControl* reset_control)
      : config_(config), reset_control_(reset_control) {}

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;
  memory::AccessRules valid() const override { return config_->valid(); }
  memory::AccessRules impl() const override { return config_->impl(); }

 private:
  memory::MmioOps* config_;          // not owned
  Ich9ResetControl* reset_control_;  // not owned
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_I386_ICH9_RESET_CONTROL_H_
