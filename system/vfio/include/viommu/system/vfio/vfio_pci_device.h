// viommu/system/vfio/vfio_pci_device.h — the guest-facing vfio-pci device: a
// PCI function on viommu's bus that stands for a host PCI function opened
// through vfio::HostBackend (QEMU's vfio-pci, as behaviour).
//
//   int fd = ...;  // VFIO_GROUP_GET_DEVICE_FD or the cdev; owned by caller
//   VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<VfioPciDevice> dev,
//       VfioPciDevice::Create(&backend, fd, "0000:01:00.0"));
//   VfioPciDevice* vdev = dev.get();
//   VIOMMU_RETURN_IF_ERROR(bus.Plug(std::move(dev), devfn).status());
//   ... main loop: poll(vdev->InterruptEventFds()); vdev->PollInterrupts();
//   bus.Unplug(vdev->devfn());   // unmaps BARs, closes the eventfds
//   backend.Close(fd);           // the owner closes the device fd
//
// Config space (256 bytes, conventional PCI):
//  * IDs, revision, class and subsystem ids are the host's (read from the
//    config region at Create); the header type is 0 (multifunction bit
//    cleared); the interrupt pin is the host's when the host has INTx.
//  * COMMAND: kept locally (BAR decoding, bus mastering, INTx disable act
//    as for any viommu PCI device) and every written command byte is also
//    pwritten to the host's config region. STATUS is local.
//  * BARs 0..5 are emulated: sizes from GET_REGION_INFO, 32/64-bit and
//    prefetchable from the host's BAR registers; the guest sizes and
//    places them like any viommu BAR, nothing is written to the host BARs.
//    The expansion ROM is not exposed (reads 0).
//  * Capabilities (the host list walked at Create, loops and bad pointers
//    ending the walk): MSI is emulated by PciDevice (per-vector masking
//    not offered; placed at the first free dword from 0x40 after the other
//    capabilities, which is the host's offset when MSI is first there,
//    and heading the list);
//    MSI-X and PCI Express are hidden (this bus is conventional PCI and
//    MSI-X is not modelled); every other capability is passed read-only:
//    its id/next bytes are emulated to rebuild the list, its body is read
//    live from the host, writes to it are dropped. Hidden capabilities read
//    as 0. Bytes 0x40..0xff outside every capability are passed through
//    (read from and written to the host); as in QEMU a capability is taken
//    to run up to the next one (the last to 0xff), so these are the bytes
//    between 0x40 and the first capability.
// BARs: each BAR is an MMIO region "<host> BAR <n>" whose accesses (1, 2,
// 4 or 8 bytes, as the host allows) are pread/pwrite on the device fd at
// region offset + address. For a memory BAR whose region has the MMAP
// flag, each mmap area (the whole region, or the areas of its sparse-mmap
// capability) is mmap'd from the fd and shown over the MMIO path as the
// ram_device region "<host> BAR <n> mmaps[<k>]", so guest accesses hit
// host memory directly and memory listeners (VFIO) see ram_device
// sections; the gaps between areas stay on the MMIO path. A failed mmap
// leaves its area on the MMIO path (counted, as QEMU carries on slower).
// Interrupts: INTx (eventfd, ACTION_TRIGGER) from realize while MSI is
// off; when the guest enables MSI, INTx is torn down and one eventfd per
// enabled vector is registered for MSI (and the reverse when it disables
// it). PollInterrupts() reads the eventfds: MSI vector n is sent with the
// guest's address/data through the bus-master space (MsiNotify); INTx
// asserts the pin. The host masks INTx when it fires; as QEMU without
// KVM, the next guest access to a BAR's MMIO path lowers the pin and
// unmasks it at the host (ACTION_UNMASK). Accesses through an mmap'd BAR
// never reach viommu, so (as QEMU's vfio_intx_interrupt) the INTx that
// asserts the pin also disables every BAR mmap (their ram_device regions)
// until the interrupt has ended: the guest's handler then reaches the MMIO
// path and ends it; the first PollInterrupts() after that turns the mmaps
// back on (QEMU uses a timer; here the poll after the EOI).
// Reset: interrupts off at the host, host COMMAND I/O, memory and master
// cleared, DEVICE_RESET (when the device offers it), the local config
// reset, then INTx back on.
// Errors: Create fails cleanly with a Status; after that host failures
// (guest-triggered config/BAR traffic, SET_IRQS, reset) never abort: they
// are counted in stats().host_errors and kept in last_host_error().
// Lifetime: `backend` is not owned and must outlive the device; the device
// fd belongs to the caller, must stay open while the device exists, and is
// never closed here. Unplugging (Unrealize) disables the interrupts at the
// host, closes the eventfds and unmaps the BAR mmaps (after removing their
// ram_device regions from the topology, so no later view shows them).
// Threading: control context only, like every PciDevice; BAR accesses from
// another thread would race the backend. There is no RCU grace period:
// the embedder must not let accesses on other threads (which may hold an
// older view showing a ram_device region) run across an unplug.
#ifndef VIOMMU_SYSTEM_VFIO_VFIO_PCI_DEVICE_H_
#define VIOMMU_SYSTEM_VFIO_VFIO_PCI_DEVICE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/memory/memory_region.h"
#include "viommu/system/vfio/vfio_pci_host_info.h"
#include "viommu/vfio/host/host_backend.h"

namespace viommu::system {

class VfioPciDevice final : public hw::pci::PciDevice {
 public:
  enum class IrqMode : uint8_t { kNone, kIntx, kMsi };
  struct Stats {
    uint64_t host_errors = 0;     // failed host calls after Create
    uint64_t msi_delivered = 0;   // MsiNotify calls that sent a message
    uint64_t intx_asserted = 0;   // INTx eventfd signals
    uint64_t intx_unmasked = 0;   // EOIs (ACTION_UNMASK) after a BAR access
    uint64_t mmap_fallbacks = 0;  // mmap areas left on pread/pwrite
    uint64_t mmaps_disabled = 0;  // INTx turned the BAR mmaps off
  };

  // Reads the device's info, regions, irqs and config (see
  // ReadVfioPciHostInfo) and plans the BARs and capabilities; nothing is
  // mapped or registered until the device is plugged. `host` names the
  // function in region names and messages ("0000:01:00.0").
  // Errors: those of ReadVfioPciHostInfo (host errno codes, kDataLoss,
  // kFailedPrecondition); kFailedPrecondition for a host
  // function that is not type 0, or a BAR this bus cannot emulate (size
  // not a power of two, under 16 bytes (4 for I/O), a 32-bit BAR over
  // 4 GiB, a 64-bit BAR in slot 5).
  // REQUIRES: backend != nullptr.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VfioPciDevice>> Create(
      vfio::HostBackend* backend, int device_fd, std::string host);
  ~VfioPciDevice() override;

  const std::string& host() const { return host_; }
  int device_fd() const { return fd_; }
  const VfioPciHostInfo& host_info() const { return info_; }

  // PciDevice: the virtualisation described above.
  uint32_t ConfigRead(uint32_t offset, unsigned size) override;
  void ConfigWrite(uint32_t offset, uint32_t value, unsigned size) override;
  void Reset() override;

  // Reads every interrupt eventfd without blocking and delivers what
  // fired (see file comment). Cheap when nothing fired; call it from the
  // main loop when an eventfd is readable, or on every iteration.
  void PollInterrupts();
  // The eventfds currently registered with the host (INTx: one; MSI: one
  // per enabled vector; none while unplugged). The set changes when the
  // guest toggles MSI and on reset: re-read it after every ConfigWrite,
  // Reset and PollInterrupts.
  std::vector<int> InterruptEventFds() const;
  // Changes whenever the InterruptEventFds() set changes, so a poll loop
  // can rebuild its watch list only then.
  uint64_t interrupt_fds_generation() const { return irq_fds_generation_; }
  IrqMode irq_mode() const { return irq_mode_; }
  // Whether BAR `index` is shown through an mmap (ram_device) now: it has
  // one and no pending INTx has turned the mmaps off.
  bool BarIsMmapped(int index) const;

  const Stats& stats() const { return stats_; }
  // The most recent host failure after Create (OK if none).
  const absl::Status& last_host_error() const { return last_host_error_; }

 protected:
  [[nodiscard]] absl::Status Realize() override;
  void Unrealize() override;

 private:
  class BarOps;
  // A move-only eventfd(2) (EFD_NONBLOCK | EFD_CLOEXEC), closed when
  // destroyed.
  class EventFd {
   public:
    [[nodiscard]] static absl::StatusOr<EventFd> Create();
    EventFd(EventFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    EventFd& operator=(EventFd&& other) noexcept;
    EventFd(const EventFd&) = delete;
    EventFd& operator=(const EventFd&) = delete;
    ~EventFd();
    int fd() const { return fd_; }
    // Non-blocking read: the counter (0 when nothing fired).
    uint64_t Drain() const;

   private:
    explicit EventFd(int fd) : fd_(fd) {}
    int fd_ = -1;
  };
  struct BarPlan {
    bool present = false;
    hw::pci::BarType type = hw::pci::BarType::kMem32;
    bool prefetchable = false;
    bool mmap = false;  // memory BAR with mmap areas
  };
  struct MmapState {
    std::shared_ptr<memory::MemoryRegion> ram_device;
    void* addr = nullptr;
    uint64_t len = 0;
  };
  struct BarState {
    std::unique_ptr<BarOps> ops;  // lives as long as the device
    std::shared_ptr<memory::MemoryRegion> mmio;
    std::vector<MmapState> mmaps;  // one per mapped area
  };
  enum class CapMode : uint8_t { kMsi, kPassReadOnly, kHidden };
  struct CapPlan {
    uint8_t id = 0;
    uint8_t offset = 0;
    uint8_t size = 0;  // up to the next capability or the end
    CapMode mode = CapMode::kHidden;
  };

  VfioPciDevice(vfio::HostBackend* backend, int fd, std::string host,
                const VfioPciHostInfo& info,
                const hw::pci::PciDeviceInfo& pci_info);

  // Config (vfio_pci_config.cc).
  [[nodiscard]] absl::Status PlanBars();
  void PlanCapabilities();
  [[nodiscard]] absl::Status ApplyCapabilities();  // Realize: list + byte modes
  bool HostConfigRead(uint32_t offset, uint8_t* buf, unsigned len);
  // Shows or hides every BAR's mmap (ram_device) regions in one
  // transaction; hidden, their ranges fall through to the MMIO path.
  void SetMmapsEnabled(bool enabled);
  void HostConfigWrite(uint32_t offset, const uint8_t* buf, unsigned len);
  // Realize/Unrealize of the BARs (vfio_pci_device.cc).
  void RealizeBars();
  void UnrealizeBars();
  // Interrupts (vfio_pci_irq.cc).
  // VFIO_DEVICE_SET_IRQS with `count` and, for DATA_EVENTFD, `fds`.
  [[nodiscard]] absl::Status SetIrqs(uint32_t index, uint32_t flags,
                                     uint32_t count,
                                     const std::vector<int>& fds);
  [[nodiscard]] absl::Status EnableIntx();
  [[nodiscard]] absl::Status EnableMsi(unsigned vectors);
  void DisableIrqs();     // whatever is active; errors are recorded
  void UpdateMsiState();  // after a config write
  void IntxEoi();         // a BAR MMIO access
  void RecordHostError(absl::Status status);

  vfio::HostBackend* backend_;  // not owned, outlives this
  int fd_;                      // not owned (see file comment)
  std::string host_;
  VfioPciHostInfo info_;
  std::array<BarPlan, hw::pci::kNumBars> bar_plan_{};
  // Default-initialised, not `{}`: aggregate-initialising the array here
  // would need BarState's destructor, so ~unique_ptr<BarOps>, while BarOps
  // is incomplete (clang rejects it). The constructor and destructor are
  // defined in vfio_pci_device.cc, where BarOps is complete; every
  // BarState member has a default constructor.
  std::array<BarState, hw::pci::kNumBars> bars_;
  std::vector<CapPlan> caps_;  // host list order
  // Per config byte: read from the host / also written to the host.
  std::array<bool, 256> read_host_{};
  std::array<bool, 256> write_host_{};
  bool realized_ = false;

  IrqMode irq_mode_ = IrqMode::kNone;
  std::vector<EventFd> irq_fds_;
  uint64_t irq_fds_generation_ = 0;
  bool intx_pending_ = false;
  bool mmaps_off_ = false;    // SetMmapsEnabled(false) in effect
  unsigned msi_vectors_ = 0;  // enabled at the host

  Stats stats_;
  absl::Status last_host_error_;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_VFIO_VFIO_PCI_DEVICE_H_
