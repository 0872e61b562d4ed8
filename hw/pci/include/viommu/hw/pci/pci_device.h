// viommu/hw/pci/pci_device.h — the base of every PCI function (QEMU's
// PCIDevice): a type-0 configuration space with BARs, command/status, a
// capability list with MSI, INTx, and DMA through the bus-master address
// space.
//
//   class Edu final : public PciDevice {
//    public:
//     Edu() : PciDevice("edu", {.vendor_id = 0x1234, .device_id = 0x11e8,
//                               .revision = 0x10, .class_code = 0x00ff00,
//                               .interrupt_pin = 1}) {}
//    protected:
//     absl::Status Realize() override {
//       regs_ = MemoryRegion::CreateMmio(memory(), "edu-mmio", 1 << 20, &ops_);
//       RegisterBar(0, BarType::kMem32, /*prefetchable=*/false, regs_);
//       return AddMsiCapability(/*vectors=*/1, /*is_64bit=*/true).status();
//     }
//   };
//   bus.Plug(std::make_unique<Edu>(), /*devfn=*/std::nullopt);
//
// Semantics (QEMU's hw/pci/pci.c, PCI Local Bus spec 3.0):
//  * Config space is 256 bytes (conventional PCI, as every device QEMU's
//    q35 creates by default) or 4 KiB (PciDeviceInfo::pcie); the bus reads
//    all-ones beyond it. Reads and writes of 1, 2 or 4 bytes; bytes not
//    writable keep their value; status error bits are write-1-to-clear.
//    As QEMU's pci_init_wmask, the device-specific area from 0x40 is
//    writable except where capabilities sit.
//  * BARs: the low bits are fixed by the type (I/O: bit 0 set; memory:
//    bits 2:1 = 00 (32-bit) or 10 (64-bit), bit 3 prefetchable); the
//    address bits below the size are read-only 0, so writing all ones and
//    reading back yields ~(size - 1) | type bits. A 64-bit BAR takes two
//    slots. A BAR is mapped into the bus's memory (or I/O) space at its
//    address while COMMAND.MEMORY (or .IO) is set and the address is not
//    all-ones-sized (QEMU's pci_bar_address rules), and unmapped when the
//    bit is cleared or the BAR moves.
//  * COMMAND.MASTER gates DMA: DmaRead/DmaWrite and MSI go through the
//    bus-master address space, whose alias of the DMA root is enabled only
//    while MASTER is set; with it clear they hit nothing (decode error).
//  * INTx: SetIntx() drives the pin unless COMMAND.INTX_DISABLE is set;
//    STATUS.INTERRUPT reflects the device's level either way.
//  * MSI (capability id 0x05): when enabled, MsiNotify(v) writes the
//    message data (| v for multi-vector) as a 4-byte little-endian DMA
//    write to the message address, with the device's requester id.
//  * Reset() is QEMU's pci_do_device_reset: lowers INTx, clears the
//    writable command/status/interrupt-line bits and the cache line size,
//    sets BARs back to their type bits (unmapped, no bus mastering) and
//    disables MSI (flags, address and data cleared).
//  * The DMA root (an IOMMU region, or system memory) is chosen by the bus
//    when the device is plugged (PciBus::SetIommu), as QEMU's
//    pci_init_bus_master does at realize.
//
// Threading: control context only (config accesses, reset, device timers,
// DMA issued by the device model).
#ifndef VIOMMU_HW_PCI_PCI_DEVICE_H_
#define VIOMMU_HW_PCI_PCI_DEVICE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/core/irq.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/mem_tx.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw::pci {

class PciBus;

enum class BarType : uint8_t { kIo, kMem32, kMem64 };

struct PciDeviceInfo {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint8_t revision = 0;
  uint32_t class_code = 0;    // 24 bits: class << 16 | subclass << 8 | prog-if
  uint8_t interrupt_pin = 0;  // 0 none, 1 INTA# .. 4 INTD#
  // Both 0: QEMU's default subsystem 1af4:1100.
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
  bool multifunction = false;  // header type bit 7
  bool pcie = false;           // 4 KiB config space instead of 256 bytes
};

class PciDevice {
 public:
  PciDevice(const PciDevice&) = delete;
  PciDevice& operator=(const PciDevice&) = delete;
  virtual ~PciDevice();

  // The -device driver name ("edu") and the optional qdev id ("" if none).
  const std::string& type_name() const { return type_name_; }
  const std::string& id() const { return id_; }
  void set_id(std::string id) { id_ = std::move(id); }
  // Whether QMP device_del may remove it (default true).
  virtual bool hotpluggable() const { return true; }

  // Valid once plugged.
  uint8_t devfn() const { return devfn_; }
  uint16_t requester_id() const;  // bus << 8 | devfn
  PciBus* bus() const { return bus_; }

  // Configuration access from the host bridge (QEMU's
  // pci_default_read_config / pci_default_write_config). REQUIRES: `size`
  // is 1, 2 or 4 and offset + size <= config_size() (PciBus guarantees it).
  // Subclasses that virtualise registers override and call the base.
  virtual uint32_t ConfigRead(uint32_t offset, unsigned size);
  virtual void ConfigWrite(uint32_t offset, uint32_t value, unsigned size);
  // 256, or 4096 for PCI Express functions.
  uint32_t config_size() const { return info_.pcie ? kConfigSpaceSize : 256; }
  const PciDeviceInfo& info() const { return info_; }

  // System reset (see file comment). Subclasses that override call the base.
  virtual void Reset();
  // Cold reset of the configuration space: Reset(), then every byte back
  // to what it held when the function was plugged. system_reset keeps, as
  // QEMU does, what a guest wrote into writable bytes no reset rule covers
  // (e.g. 0x40-0xff outside the capabilities, writable by default); a
  // machine reused as if new (fuzzers, embedders) needs them gone too.
  void PowerOnConfigReset();

  uint16_t command() const;
  uint16_t status() const;
  // The address a BAR is currently mapped at, or nullopt when unmapped
  // (or no such BAR).
  std::optional<uint64_t> BarMappedAddress(int index) const;
  // Offset of the MSI capability; 0 when there is none.
  uint8_t msi_cap() const { return msi_cap_; }

 protected:
  PciDevice(std::string type_name, const PciDeviceInfo& info);

  // Called once by PciBus::Plug after devfn, bus and the DMA address space
  // exist: create regions, BARs, capabilities and timers here. An error
  // fails the plug (nothing stays attached).
  [[nodiscard]] virtual absl::Status Realize() { return absl::OkStatus(); }
  // Called before the device leaves the bus (unplug or bus destruction).
  virtual void Unrealize() {}
  // Called after every config write (for device-specific config
  // registers), after BARs, bus mastering, INTx and MSI were updated;
  // `offset`/`size` as written.
  virtual void ConfigWritten(uint32_t /*offset*/, unsigned /*size*/) {}

  // Registers BAR `index` backed by `region` (QEMU's pci_register_bar).
  // REQUIRES (Realize only): index free (and index + 1 < kNumBars, free,
  // for kMem64); region size a power of two (>= 16 for memory, >= 4 for
  // I/O, <= 4 GiB unless kMem64).
  void RegisterBar(int index, BarType type, bool prefetchable,
                   std::shared_ptr<memory::MemoryRegion> region);
  // Links a `size`-byte capability `cap_id` at the head of the capability
  // list (QEMU's pci_add_capability): at `offset`, or with offset 0 the
  // first free place from 0x40; its bytes become read-only. Returns the
  // offset. Errors: kInvalidArgument (size 0, or offset below 0x40, past
  // 256 bytes or overlapping a capability), kResourceExhausted (no free
  // space). (Realize only.)
  [[nodiscard]] absl::StatusOr<uint8_t> AddCapability(uint8_t cap_id,
                                                      uint8_t size,
                                                      uint8_t offset = 0);
  // Adds an MSI capability with `vectors` (1, 2, 4, .. 32) vectors and
  // returns its config offset. Errors: kInvalidArgument (bad count),
  // kResourceExhausted (no config space left). (Realize only.)
  [[nodiscard]] absl::StatusOr<uint8_t> AddMsiCapability(unsigned vectors,
                                                         bool is_64bit);

  // DMA through the bus-master address space with this device's requester
  // id. Decode error when bus mastering is off or nothing is there.
  memory::MemTxResult DmaRead(uint64_t addr, void* buf, size_t len);
  memory::MemTxResult DmaWrite(uint64_t addr, const void* buf, size_t len);

  void SetIntx(bool level);
  bool intx_level() const { return intx_level_; }
  bool msi_enabled() const;
  // Sends MSI vector `vector` if MSI is enabled and the vector is below the
  // enabled count (QEMU's msi_notify: data is the message data with its low
  // log2(count) bits replaced by the vector); returns false otherwise.
  // The message goes through the bus-master address space, so it is
  // dropped while COMMAND.MASTER is clear.
  bool MsiNotify(unsigned vector = 0);

  // Services of the machine the bus belongs to (valid from Realize on;
  // nullptr while unplugged).
  memory::MemorySystem* memory() const;
  VirtualClock* clock() const;
  memory::AddressSpace* dma_address_space() const { return dma_as_.get(); }

  // Raw config bytes and masks, for subclasses that add their own
  // registers: writable bits, write-1-to-clear bits.
  uint8_t* config() { return config_.data(); }
  uint8_t* wmask() { return wmask_.data(); }
  uint8_t* w1cmask() { return w1cmask_.data(); }

 private:
  friend class PciBus;
  struct Bar {
    BarType type = BarType::kMem32;
    bool prefetchable = false;
    std::shared_ptr<memory::MemoryRegion> region;  // null: unused slot
    std::optional<uint64_t> mapped_at;
  };

  // Called by PciBus::Plug before Realize: fresh config space and masks,
  // the bus-master address space over `dma_root`.
  void Attach(PciBus* bus, uint8_t devfn,
              std::shared_ptr<memory::MemoryRegion> dma_root);
  // Called by PciBus after Unrealize (or a failed Realize): lowers INTx,
  // unmaps BARs, forgets BARs and capabilities, drops the DMA space.
  void Detach();
  void InitConfig();
  void UpdateBars();  // QEMU's pci_update_mappings
  void UpdateBusMaster();
  void UpdateIntxPin();
  void MsiWriteConfig(uint32_t offset, unsigned size);
  void MsiReset();
  // QEMU's pci_bar_address: where BAR `index` decodes now, or nullopt.
  std::optional<uint64_t> BarDecodeAddress(int index) const;
  // Connects INTx to `line` of `sink` (nullptr: unconnected), moving the
  // current level over.
  void WireIntx(IrqSink* sink, int line);

  std::string type_name_;
  std::string id_;
  PciDeviceInfo info_;
  PciBus* bus_ = nullptr;  // not owned, outlives the device while plugged
  uint8_t devfn_ = 0;
  std::array<uint8_t, kConfigSpaceSize> config_{};
  // config_ as it was right after Realize (PciBus::Plug).
  std::array<uint8_t, kConfigSpaceSize> power_on_config_{};
  std::array<uint8_t, kConfigSpaceSize> wmask_{};
  std::array<uint8_t, kConfigSpaceSize> w1cmask_{};
  std::array<Bar, kNumBars> bars_{};
  uint8_t msi_cap_ = 0;               // 0: none
  std::array<bool, 256> cap_used_{};  // QEMU's pdev->used (dword-aligned)
  bool intx_level_ = false;
  IrqLine intx_;
  // Bus-master view: a container with an alias of the DMA root that is
  // enabled while COMMAND.MASTER is set.
  std::shared_ptr<memory::MemoryRegion> bus_master_root_;
  std::shared_ptr<memory::MemoryRegion> bus_master_alias_;
  std::unique_ptr<memory::AddressSpace> dma_as_;
};

}  // namespace viommu::hw::pci

#endif  // VIOMMU_HW_PCI_PCI_DEVICE_H_
