// viommu/hw/i386/q35_machine.h — the q35 machine: guest RAM, the PCI host
// bridge with CF8/CFC and ECAM, the MSI window, the virtual clock, the
// interrupt router, and the -device / device_add front end.
//
//   VIOMMU_ASSIGN_OR_RETURN(auto m,
//                           Q35Machine::Create({.ram_size = 256 << 20}));
//   VIOMMU_RETURN_IF_ERROR(
//       m->AddDevice({.driver = "edu", .props = {{"addr", "4"}}}));
//   uint32_t id = 0;
//   m->system_as().Read(0xb0000000 + (4 << 15), &id, 4);  // 0x11e81234
//
// Layout (ARCHITECTURE.md §3, a CONTRACT): RAM from 0 — below 4 GiB as
// QEMU's q35 splits it (all of it when it is smaller than 0xb0000000,
// otherwise 2 GiB) and the rest from 4 GiB —, ECAM at 0xb0000000
// (256 MiB) once the guest sets PCIEXBAR's enable bit (as on QEMU, where
// firmware does it; the host bridge's config 0x60 moves or resizes the
// window), MSI window 0xfee00000, host bridge 8086:29c0 at 00.0, the
// ICH9 functions QEMU always creates at 1f.0/1f.2/1f.3 (ID registers
// only), config ports 0xcf8/0xcfc. I/O ports with nothing behind them read
// all-ones, as QEMU's unassigned_io_ops.
//
// Threading: control context only, except the AddressSpace accessors,
// which follow address_space.h.
#ifndef VIOMMU_HW_I386_Q35_MACHINE_H_
#define VIOMMU_HW_I386_Q35_MACHINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/core/irq.h"
#include "viommu/hw/core/msi.h"
#include "viommu/hw/core/viommu.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_engine.h"
#include "viommu/hw/iommu/vtd_viommu.h"
#include "viommu/hw/pci/pci_bus.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw {

inline constexpr uint64_t kEcamBase = 0xb000'0000;
inline constexpr uint64_t kEcamSize = 0x1000'0000;
inline constexpr uint64_t kMsiBase = 0xfee0'0000;
inline constexpr uint64_t kMsiSize = 0x10'0000;
inline constexpr uint64_t kVtdRegBase = vtd::kRegBase;
inline constexpr uint64_t kFourGiB = uint64_t{1} << 32;
inline constexpr int kNumGsi = 24;

// What -device and QMP device_add describe.
struct DeviceSpec {
  std::string driver;
  std::string id;  // "" when none
  // Every other property as text (QMP numbers and booleans converted).
  absl::btree_map<std::string, std::string> props;
};

// The interrupt controller inputs (GSIs) the machine routes lines to, and
// what qtest's irq_intercept_in observes.
class GsiRouter final : public IrqSink {
 public:
  void SetIrq(int line, bool level) override;
  bool level(int gsi) const;
  // Called on every level change (qtest's IRQ raise/lower lines).
  void set_observer(std::function<void(int gsi, bool level)> fn) {
    observer_ = std::move(fn);
  }

 private:
  bool levels_[kNumGsi] = {};
  std::function<void(int, bool)> observer_;
};

class Ich9ResetControl;  // hw/i386/ich9_reset_control.h

class Q35Machine {
 public:
  struct Options {
    uint64_t ram_size = 128 << 20;  // QEMU's x86 default
  };

  // Errors: kInvalidArgument (RAM size 0, not a multiple of 4 KiB, or too
  // large for this host), kResourceExhausted (RAM cannot be allocated).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Q35Machine>> Create(
      const Options& options);
  Q35Machine(const Q35Machine&) = delete;
  Q35Machine& operator=(const Q35Machine&) = delete;
  ~Q35Machine();

  // -device / device_add. Known drivers: the ones in device_factory.h,
  // and the vIOMMUs (IsViommuDriver: "intel-iommu", registers at
  // kVtdRegBase, not a PCI device, so no `addr`; "virtio-iommu-pci", a
  // PCI function at `addr` whose state the machine owns, see
  // hw/iommu/virtio/virtio_iommu.h). One vIOMMU per machine:
  // a second is kAlreadyExists "QEMU does not support multiple vIOMMUs for
  // x86 yet.". A vIOMMU gives every PCI function on bus 0 its DMA address
  // space (hw/core/viommu.h), also those added before it on the command
  // line: QEMU 7.2 sets up cold-plugged devices' bus-master spaces at
  // machine-done, so the order does not matter there (checked against
  // QEMU); here the earlier devices are re-plugged at their devfn (fresh
  // state, as no guest has run yet).
  // The `addr` property is SLOT[.FN] in hex as QEMU's ("4", "04.0",
  // "0x4.1"); without it the lowest free slot from 1 up.
  // Errors: kInvalidArgument (unknown driver, bad property or
  // value, named), kAlreadyExists (slot in use, duplicate id),
  // kResourceExhausted (no free slot), or the device's own.
  [[nodiscard]] absl::Status AddDevice(const DeviceSpec& spec);
  // device_add after machine creation (QMP): as AddDevice, but refuses
  // drivers that cannot be hot-plugged (vIOMMUs) with QEMU's
  // kInvalidArgument "Parameter 'driver' expects a pluggable device type".
  [[nodiscard]] absl::Status HotplugDevice(const DeviceSpec& spec);
  // device_del: removes the device with qdev id `id`. Errors: kNotFound,
  // kFailedPrecondition (not hot-pluggable).
  [[nodiscard]] absl::Status DeleteDevice(const std::string& id);
  // system_reset: every device reset, RAM kept, clock unchanged.
  void Reset();
  // A reset the guest asks for (a write of RST_CPU to port 0xcf9): runs
  // the handler given here (a front end's, e.g. to send QMP's RESET
  // event; it must call Reset()), or Reset() when none is set.
  void set_guest_reset_handler(std::function<void()> handler) {
    guest_reset_handler_ = std::move(handler);
  }

  memory::MemorySystem& memory() { return memory_; }
  memory::AddressSpace& system_as() { return *system_as_; }
  memory::AddressSpace& io_as() { return *io_as_; }
  VirtualClock& clock() { return clock_; }
  pci::PciBus& pci_bus() { return *pci_bus_; }
  MsiController& msi() { return msi_; }
  // The vIOMMU, or nullptr without one.
  Viommu* viommu() { return viommu_.get(); }
  // The drivers AddDevice accepts as the machine's vIOMMU.
  static bool IsViommuDriver(std::string_view driver);
  // With -device intel-iommu: the VT-d unit and its translation engine
  // (per-device DMA address spaces), for tests and fuzzers; else nullptr.
  vtd::IntelIommu* intel_iommu();
  vtd::VtdEngine* vtd_engine();
  GsiRouter& gsi() { return gsi_; }
  uint64_t ram_size() const { return ram_size_; }
  uint64_t ram_below_4g() const { return below_4g_; }

 private:
  Q35Machine() = default;
  [[nodiscard]] absl::Status Init(const Options& options);
  // Maps ECAM where the host bridge's PCIEXBAR says (or unmaps it).
  void UpdateEcam(uint64_t pciexbar);
  [[nodiscard]] absl::Status AddViommu(const DeviceSpec& spec);
  // Unplugs and re-plugs every device so it gets the vIOMMU's DMA root.
  [[nodiscard]] absl::Status ReplugForIommu();

  // All-ones reads for the I/O ports nothing claims.
  class UnassignedIo;

  memory::MemorySystem memory_;
  VirtualClock clock_;
  MsiController msi_;
  GsiRouter gsi_;
  uint64_t ram_size_ = 0;
  uint64_t below_4g_ = 0;
  std::unique_ptr<UnassignedIo> unassigned_io_;
  std::unique_ptr<memory::MmioOps> config_ports_;
  std::unique_ptr<Ich9ResetControl> reset_control_;
  std::unique_ptr<memory::MmioOps> q35_config_ports_;  // 0xcf8..0xcff
  std::function<void()> guest_reset_handler_;
  std::unique_ptr<memory::MmioOps> ecam_;
  std::shared_ptr<memory::MemoryRegion> system_root_;
  std::shared_ptr<memory::MemoryRegion> io_root_;
  std::shared_ptr<memory::MemoryRegion> ram_;
  std::shared_ptr<memory::MemoryRegion> ecam_region_;  // null: disabled
  std::shared_ptr<memory::MemoryRegion> msi_region_;
  std::unique_ptr<memory::AddressSpace> system_as_;
  std::unique_ptr<memory::AddressSpace> io_as_;
  std::unique_ptr<pci::PciBus> pci_bus_;
  std::unique_ptr<Viommu> viommu_;  // null: none
  std::string viommu_id_;
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_I386_Q35_MACHINE_H_
