// VfioPciDevice: creation from a device fd, realize/unrealize, the BARs
// (pread/pwrite MMIO plus mmap'd ram_device regions) and reset. Config
// space virtualisation is in vfio_pci_config.cc, interrupts in
// vfio_pci_irq.cc.
#include "viommu/system/vfio/vfio_pci_device.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/memory/memory_system.h"
#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"
#include "viommu/util/status_macros.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;
using hw::pci::kCfgCommand;
using hw::pci::kCfgHeaderType;
using hw::pci::kCfgInterruptPin;
using hw::pci::kCfgSubsystemVendorId;

}  // namespace

// A BAR's MMIO path (QEMU's vfio_region_ops, as behaviour): 1..8-byte
// aligned accesses become pread/pwrite on the device fd; a failed host
// access reads all-ones and is counted. Every access ends a pending INTx.
class VfioPciDevice::BarOps final : public memory::MmioOps {
 public:
  BarOps(VfioPciDevice* dev, int index) : dev_(dev), index_(index) {}

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs) override {
    const VfioRegionInfo& r = dev_->info_.regions[index_];
    *value = AllOnes(size);
    if ((r.flags & uapi::kRegionInfoFlagRead) && offset + size <= r.size) {
      uint8_t buf[8] = {};
      const int64_t n =
          dev_->backend_->Pread(dev_->fd_, buf, size, r.offset + offset);
      if (n == size) {
        *value = LoadLe(buf, size);
      } else {
        dev_->RecordHostError(Failure("pread", n, offset, size));
      }
    }
    dev_->IntxEoi();
    return memory::MemTxResult::Ok();
  }

  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs) override {
    const VfioRegionInfo& r = dev_->info_.regions[index_];
    if ((r.flags & uapi::kRegionInfoFlagWrite) && offset + size <= r.size) {
      uint8_t buf[8];
      StoreLe(buf, value, size);
      const int64_t n =
          dev_->backend_->Pwrite(dev_->fd_, buf, size, r.offset + offset);
      if (n != size) {
        dev_->RecordHostError(Failure("pwrite", n, offset, size));
      }
    }
    dev_->IntxEoi();
    return memory::MemTxResult::Ok();
  }

  memory::AccessRules valid() const override { return {1, 8, false}; }
  memory::AccessRules impl() const override { return {1, 8, false}; }

 private:
  [[nodiscard]] absl::Status Failure(const char* op, int64_t n, uint64_t offset,
                                     unsigned size) const {
    const std::string args =
        absl::StrFormat("fd=%d, %s BAR %d, len=%u, offset=0x%x", dev_->fd_,
                        dev_->host_, index_, size, offset);
    if (n < 0) return VfioHostCallError(n, op, args);
    return absl::DataLossError(
        absl::StrFormat("%s(%s): short transfer of %d bytes", op, args, n));
  }

  VfioPciDevice* dev_;  // not owned, owns this
  int index_;
};

absl::StatusOr<std::unique_ptr<VfioPciDevice>> VfioPciDevice::Create(
    vfio::HostBackend* backend, int device_fd, std::string host) {
  VIOMMU_CHECK(backend != nullptr);
  VIOMMU_ASSIGN_OR_RETURN(VfioPciHostInfo host_info,
                          ReadVfioPciHostInfo(*backend, device_fd));
  const uint8_t* c = host_info.config.data();
  if ((c[kCfgHeaderType] & 0x7f) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vfio-pci %s: header type 0x%02x is not a type-0 function", host,
        c[kCfgHeaderType]));
  }
  const uint8_t pin = c[kCfgInterruptPin];
  const bool has_intx = host_info.intx.count > 0 &&
                        (host_info.intx.flags & uapi::kIrqInfoEventfd);
  const hw::pci::PciDeviceInfo pci_info{
      .vendor_id = static_cast<uint16_t>(LoadLe(c + hw::pci::kCfgVendorId, 2)),
      .device_id = static_cast<uint16_t>(LoadLe(c + hw::pci::kCfgDeviceId, 2)),
      .revision = c[hw::pci::kCfgRevision],
      .class_code =
          static_cast<uint32_t>(LoadLe(c + hw::pci::kCfgClassProg, 3)),
      .interrupt_pin =
          static_cast<uint8_t>(has_intx && pin >= 1 && pin <= 4 ? pin : 0),
      .subsystem_vendor_id =
          static_cast<uint16_t>(LoadLe(c + kCfgSubsystemVendorId, 2)),
      .subsystem_id =
          static_cast<uint16_t>(LoadLe(c + hw::pci::kCfgSubsystemId, 2)),
      .multifunction = false,
      .pcie = false,
  };
  std::unique_ptr<VfioPciDevice> dev(new VfioPciDevice(
      backend, device_fd, std::move(host), host_info, pci_info));
  VIOMMU_RETURN_IF_ERROR(dev->PlanBars());
  dev->PlanCapabilities();
  return dev;
}

VfioPciDevice::VfioPciDevice(vfio::HostBackend* backend, int fd,
                             std::string host, const VfioPciHostInfo& info,
                             const hw::pci::PciDeviceInfo& pci_info)
    : PciDevice("vfio-pci", pci_info),
      backend_(backend),
      fd_(fd),
      host_(std::move(host)),
      info_(info) {
  for (int i = 0; i < hw::pci::kNumBars; ++i) {
    bars_[i].ops = std::make_unique<BarOps>(this, i);
  }
}

VfioPciDevice::~VfioPciDevice() {
  // Normally Unrealize ran already (the bus unplugs before handing the
  // device back); this only releases host resources left by an error.
  irq_fds_.clear();
  UnrealizeBars();
}

absl::Status VfioPciDevice::Realize() {
  // Keep the host's subsystem ids even when they are 0/0 (PciDevice would
  // substitute QEMU's default).
  std::memcpy(config() + kCfgSubsystemVendorId,
              info_.config.data() + kCfgSubsystemVendorId, 4);
  RealizeBars();
  absl::Status st = ApplyCapabilities();
  if (st.ok() && config()[kCfgInterruptPin] != 0) st = EnableIntx();
  if (!st.ok()) {
    DisableIrqs();
    UnrealizeBars();
    return st;
  }
  realized_ = true;
  return absl::OkStatus();
}

void VfioPciDevice::Unrealize() {
  DisableIrqs();
  UnrealizeBars();
  realized_ = false;
}

void VfioPciDevice::RealizeBars() {
  for (int i = 0; i < hw::pci::kNumBars; ++i) {
    const BarPlan& plan = bar_plan_[i];
    if (!plan.present) continue;
    const VfioRegionInfo& r = info_.regions[i];
    BarState& bar = bars_[i];
    const std::string name = absl::StrFormat("%s BAR %d", host_, i);
    bar.mmio =
        memory::MemoryRegion::CreateMmio(memory(), name, r.size, bar.ops.get());
    for (size_t k = 0; plan.mmap && k < r.mmap_areas.size(); ++k) {
      const VfioMmapArea& area = r.mmap_areas[k];
      absl::StatusOr<void*> addr =
          backend_->Mmap(fd_, area.size, r.offset + area.offset);
      if (!addr.ok() || *addr == nullptr) {
        // QEMU carries on without the mmap, only slower.
        ++stats_.mmap_fallbacks;
        RecordHostError(addr.ok() ? absl::InternalError(absl::StrFormat(
                                        "mmap of %s BAR %d area %d returned "
                                        "null",
                                        host_, i, k))
                                  : addr.status());
        continue;
      }
      MmapState m{.ram_device = memory::MemoryRegion::CreateRamDevice(
                      memory(), absl::StrFormat("%s mmaps[%d]", name, k),
                      area.size, *addr),
                  .addr = *addr,
                  .len = area.size};
      bar.mmio->AddSubregion(area.offset, m.ram_device);
      bar.mmaps.push_back(std::move(m));
    }
    RegisterBar(i, plan.type, plan.prefetchable, bar.mmio);
  }
}

void VfioPciDevice::UnrealizeBars() {
  if (memory() != nullptr) {
    memory::MemorySystem::Transaction txn(memory());
    for (BarState& bar : bars_) {
      for (MmapState& m : bar.mmaps) {
        if (m.ram_device->parent() != nullptr) {
          m.ram_device->parent()->RemoveSubregion(m.ram_device.get());
        }
      }
    }
  }
  for (BarState& bar : bars_) {
    for (MmapState& m : bar.mmaps) {
      m.ram_device.reset();
      backend_->Munmap(m.addr, m.len);
    }
    bar.mmaps.clear();
    bar.mmio.reset();
  }
  mmaps_off_ = false;
}

bool VfioPciDevice::BarIsMmapped(int index) const {
  if (index < 0 || index >= hw::pci::kNumBars) return false;
  return !bars_[index].mmaps.empty() && !mmaps_off_;
}

void VfioPciDevice::SetMmapsEnabled(bool enabled) {
  mmaps_off_ = !enabled;
  if (memory() == nullptr) return;
  memory::MemorySystem::Transaction txn(memory());
  for (BarState& bar : bars_) {
    for (MmapState& m : bar.mmaps) m.ram_device->SetEnabled(enabled);
  }
}

// QEMU's vfio_pci_reset order: interrupts off and the host's I/O, memory
// and bus-master decoding stopped, the device reset, then the emulated
// state, then INTx again.
void VfioPciDevice::Reset() {
  if (realized_) {
    DisableIrqs();
    uint8_t cmd[2];
    if (HostConfigRead(kCfgCommand, cmd, 2)) {
      cmd[0] &=
          static_cast<uint8_t>(~(hw::pci::kCommandIo | hw::pci::kCommandMemory |
                                 hw::pci::kCommandMaster));
      HostConfigWrite(kCfgCommand, cmd, 2);
    }
  }
  if (info_.device_flags & uapi::kDeviceFlagsReset) {
    const int rc = backend_->Ioctl(fd_, uapi::kVfioDeviceReset, 0);
    if (rc < 0) {
      RecordHostError(VfioHostCallError(rc, "VFIO_DEVICE_RESET",
                                        absl::StrFormat("fd=%d", fd_)));
    }
  }
  PciDevice::Reset();
  if (realized_ && config()[kCfgInterruptPin] != 0) {
    absl::Status st = EnableIntx();
    if (!st.ok()) RecordHostError(std::move(st));
  }
}

void VfioPciDevice::RecordHostError(absl::Status status) {
  ++stats_.host_errors;
  last_host_error_ = std::move(status);
}

}  // namespace viommu::system
