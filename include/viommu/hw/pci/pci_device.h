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
//  * Config space is 4 KiB (the first 256 bytes are what CF8/CFC reach).
//    Reads and writes of 1, 2 or 4 bytes anywhere inside it; bytes not
//    writable keep their value; status bits are write-1-to-clear.
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
//  * Reset() restores config space defaults (BARs 0, command 0: unmapped,
//    no bus mastering, MSI disabled) and lowers INTx.
//
// Threading: control context only (config accesses, reset, device timers,
// DMA issued by the device model).
#ifndef VIOMMU_HW_PCI_PCI_DEVICE_H_
#define VIOMMU_HW_PCI_PCI_DEVICE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/core/irq.h"
#include "viommu/hw/core/virtual_clock.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/mem_tx.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::hw::pci {

class PciBus;

inline constexpr int kNumBars = 6;
inline constexpr uint32_t kConfigSpaceSize = 4096;

// Standard config-space offsets and bits (PCI 3.0 §6.2).
inline constexpr uint32_t kCfgVendorId = 0x00;
inline constexpr uint32_t kCfgDeviceId = 0x02;
inline constexpr uint32_t kCfgCommand = 0x04;
inline constexpr uint32_t kCfgStatus = 0x06;
inline constexpr uint32_t kCfgRevision = 0x08;
inline constexpr uint32_t kCfgClassProg = 0x09;
inline constexpr uint32_t kCfgHeaderType = 0x0e;
inline constexpr uint32_t kCfgBar0 = 0x10;
inline constexpr uint32_t kCfgSubsystemVendorId = 0x2c;
inline constexpr uint32_t kCfgSubsystemId = 0x2e;
inline constexpr uint32_t kCfgCapabilityList = 0x34;
inline constexpr uint32_t kCfgInterruptLine = 0x3c;
inline constexpr uint32_t kCfgInterruptPin = 0x3d;

inline constexpr uint16_t kCommandIo = 1 << 0;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandMaster = 1 << 2;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
inline constexpr uint16_t kStatusInterrupt = 1 << 3;
inline constexpr uint16_t kStatusCapList = 1 << 4;

inline constexpr uint8_t kCapIdMsi = 0x05;

enum class BarType : uint8_t { kIo, kMem32, kMem64 };

struct PciDeviceInfo {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint8_t revision = 0;
  uint32_t class_code = 0;  // 24 bits: class << 16 | subclass << 8 | prog-if
  uint8_t interrupt_pin = 0;  // 0 none, 1 INTA# .. 4 INTD#
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
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

  // Configuration access from the host bridge. `size` is 1, 2 or 4 and
  // offset + size <= kConfigSpaceSize (callers guarantee it).
  uint32_t ConfigRead(uint32_t offset, unsigned size);
  void ConfigWrite(uint32_t offset, uint32_t value, unsigned size);

  // System reset (see file comment). Subclasses that override call the base.
  virtual void Reset();

  uint16_t command() const;
  // The address a BAR is currently mapped at, or nullopt when unmapped.
  std::optional<uint64_t> BarMappedAddress(int index) const;

 protected:
  PciDevice(std::string type_name, const PciDeviceInfo& info);

  // Called once by PciBus::Plug after devfn, bus and the DMA address space
  // exist: create regions, BARs, capabilities and timers here. An error
  // fails the plug (nothing stays attached).
  virtual absl::Status Realize() { return absl::OkStatus(); }
  // Called before the device leaves the bus (unplug or bus destruction).
  virtual void Unrealize() {}
  // Called after a config write changed anything (for device-specific
  // config registers); `offset`/`size` as written.
  virtual void ConfigWritten(uint32_t /*offset*/, unsigned /*size*/) {}

  // REQUIRES (Realize only): index free (and index + 1 for kMem64);
  // region size a power of two (>= 16 for memory, >= 4 for I/O).
  void RegisterBar(int index, BarType type, bool prefetchable,
                   std::shared_ptr<memory::MemoryRegion> region);
  // Adds an MSI capability with `vectors` (1, 2, 4, .. 32) vectors and
  // returns its config offset. Errors: kInvalidArgument (bad count),
  // kResourceExhausted (no config space left). (Realize only.)
  absl::StatusOr<uint8_t> AddMsiCapability(unsigned vectors, bool is_64bit);

  // DMA through the bus-master address space with this device's requester
  // id. Decode error when bus mastering is off or nothing is there.
  memory::MemTxResult DmaRead(uint64_t addr, void* buf, size_t len);
  memory::MemTxResult DmaWrite(uint64_t addr, const void* buf, size_t len);

  void SetIntx(bool level);
  bool intx_level() const { return intx_level_; }
  bool msi_enabled() const;
  // Sends MSI vector `vector` if MSI is enabled; returns false otherwise.
  bool MsiNotify(unsigned vector = 0);

  // Services of the machine the bus belongs to (valid from Realize on).
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

  void UpdateMappings();      // BARs and bus mastering after a change
  void UpdateIntxPin();
  uint64_t BarAddress(int index) const;

  std::string type_name_;
  std::string id_;
  PciDeviceInfo info_;
  PciBus* bus_ = nullptr;  // not owned, outlives the device while plugged
  uint8_t devfn_ = 0;
  std::array<uint8_t, kConfigSpaceSize> config_{};
  std::array<uint8_t, kConfigSpaceSize> wmask_{};
  std::array<uint8_t, kConfigSpaceSize> w1cmask_{};
  std::array<uint8_t, kConfigSpaceSize> reset_config_{};  // after Realize
  std::array<Bar, kNumBars> bars_{};
  uint8_t msi_cap_ = 0;  // 0: none
  uint8_t next_cap_offset_ = 0x40;
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
