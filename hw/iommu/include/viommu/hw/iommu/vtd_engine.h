// viommu/hw/iommu/vtd_engine.h — the VT-d translation engine: what the
// guest programs through the register block (IntelIommu) applied to the
// DMA of every PCI function: per-device address spaces (vtd_address_space.h),
// translation with faults, the caches, invalidations and the shadow sync
// that feeds the IOMMU regions' MAP/UNMAP notifier chains; and interrupt
// remapping of the MSI writes devices send into their views' interrupt
// window (vtd_interrupt_remap.h).
//
//   auto engine = std::make_unique<VtdEngine>(iommu, &sys, &system_as,
//       VtdSharedRegions::Create(&sys, system_root, msi_region));
//   iommu->set_observer(engine.get());
//   AddressSpace as(&sys, engine->DeviceRoot(0, devfn), "vtd-04.0");
// (VtdViommu, vtd_viommu.h, puts the two behind the vIOMMU seam.)
//
// Behaviour is QEMU 7.2's legacy mode (tests/conformance/vtd_scenarios.md)
// and, with x-scalable-mode=on and RTADDR.TTM=01, its scalable mode
// (vtd_scalable.h: the tables give an equivalent legacy context entry),
// including its quirks: an IOTLB hit is not permission-checked, so a write
// to a cached read-only page fails without a fault record; PSI/DSI match a
// device by the domain id re-read from its context entry; the queue
// (vtd_invalidation_queue.h) runs synchronously inside the IQT write.
// Deliberate differences:
//  * Translate reports the walk's stacked permissions for every access
//    kind; QEMU strips W for non-write requests (§3.8 item 7). A guest
//    cannot tell: a read only needs R.
//  * A failed translation reports the faulting level's slot size as
//    addr_mask (QEMU: 0); QEMU fails the whole access after one fault, we
//    stop per slot, and later faults of the same access collapse into the
//    pending record (same SID), so the fault registers read the same.
//  * Shadow sync is exact (vtd_shadow_map.h): unchanged mappings are not
//    re-notified and no UNMAP is larger than what was mapped. A PSI range
//    is aligned down to its 2^AM pages (QEMU walks from the unaligned
//    address). Context invalidations of every granularity, TE, SRTP and
//    reset unmap everything notified, switch, then resync (QEMU skips the
//    unmap for a device-selective context invalidation).
//  * Replay hands the new notifier what the device's MAP notifiers have
//    been told (the shadow), which the first MAP registration fills from
//    the tables: O(mappings), and later syncs stay consistent for it.
//  * IOTLB: CLOCK eviction instead of QEMU's flush when 1024 are cached.
//  * Pass-through devices are switched to system memory when the context
//    is (re)evaluated (TE, SRTP, context invalidation, reset), not lazily
//    from the DMA path; Translate still answers identity for a PT context.
//
// Threading: everything runs in the control context, except the per-device
// IommuModel::Translate, which may run on any DMA thread: it reads guest
// tables from RAM through the engine's RamWindow (lock-free,
// vtd_ram_window.h), the caches' lock-free lookups and the engine's
// atomically published enable/root state, and records faults through
// IntelIommu, which serialises them with the guest's register accesses
// (intel_iommu.h, "Threading"). The interrupt window (interrupt
// remapping) is control-context only (vtd_interrupt_remap.h).
#ifndef VIOMMU_HW_IOMMU_VTD_ENGINE_H_
#define VIOMMU_HW_IOMMU_VTD_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/hw/iommu/intel_iommu.h"
#include "viommu/hw/iommu/vtd_address_space.h"
#include "viommu/hw/iommu/vtd_context.h"
#include "viommu/hw/iommu/vtd_context_cache.h"
#include "viommu/hw/iommu/vtd_guest_memory.h"
#include "viommu/hw/iommu/vtd_interrupt_remap.h"
#include "viommu/hw/iommu/vtd_invalidation_queue.h"
#include "viommu/hw/iommu/vtd_iotlb.h"
#include "viommu/hw/iommu/vtd_observer.h"
#include "viommu/hw/iommu/vtd_ram_window.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::vtd {

class VtdDevice;  // private: hw/iommu/intel/vtd_device.h

// Counters for tests and tracing.
struct VtdEngineStats {
  uint64_t walks = 0;   // translations that walked the tables (IOTLB miss)
  uint64_t faults = 0;  // faults reported (recorded or FPD-suppressed)
  uint64_t syncs = 0;   // shadow syncs run
};

class VtdEngine final : public Observer, public InvalidationSink {
 public:
  // `iommu`, `sys`, `system_as` are not owned and outlive this.
  // `system_as` is where the remapping structures are read and where
  // translated addresses point (QEMU's address_space_memory).
  VtdEngine(IntelIommu* iommu, memory::MemorySystem* sys,
            memory::AddressSpace* system_as, VtdSharedRegions shared);
  ~VtdEngine() override;

  // The DMA root of (bus, devfn): its VtdAddressSpace, created on first
  // use (QEMU's vtd_find_add_as) and kept for the engine's lifetime, also
  // across device_del (a device re-plugged at the same devfn gets it back).
  std::shared_ptr<memory::MemoryRegion> DeviceRoot(uint8_t bus, uint8_t devfn);
  // The address space of (bus, devfn), or nullptr if never asked for.
  VtdAddressSpace* FindAddressSpace(uint8_t bus, uint8_t devfn) const;

  // QEMU's vtd_dev_set_iommu_device for a passthrough function at
  // (bus, devfn): refuses it without caching mode (the only way VT-d
  // learns of new mappings) and when the guest address width (aw-bits) is
  // wider than the host IOMMU's. Errors: kFailedPrecondition (caching-mode
  // off), kInvalidArgument (aw-bits), kAlreadyExists (set twice); each
  // names hiod.name and the intel-iommu property. (vtd_host_iommu.cc)
  [[nodiscard]] absl::Status SetHostIommuDevice(
      uint8_t bus, uint8_t devfn, const devcore::HostIommuDevice& hiod);
  void UnsetHostIommuDevice(uint8_t bus, uint8_t devfn);
  // nullptr when none is set for (bus, devfn).
  const devcore::HostIommuDevice* HostIommuDeviceOf(uint8_t bus,
                                                    uint8_t devfn) const;

  VtdEngineStats stats() const;
  // Interrupt remapping: the remapper, and the "vtd-ir" window every
  // device view aliases (a machine may give it a message sink to receive
  // remapped messages with their full address, x2APIC destinations above
  // 255 included; without one they are written to the MSI window).
  const InterruptRemapper& interrupt_remapper() const { return remapper_; }
  InterruptWindow& interrupt_window() { return *shared_.ir_window; }
  const Iotlb& iotlb() const { return iotlb_; }
  const ContextCache& context_cache() const { return context_cache_; }

  // Observer (control context, inside the guest's register write).
  void OnRootTableChanged(uint64_t root) override;
  void OnTranslationEnabled(bool enabled) override;
  void OnContextInvalidate(ContextGranularity granularity, uint16_t did,
                           uint16_t sid, uint8_t fm) override;
  void OnIotlbInvalidate(IotlbGranularity granularity, uint16_t did,
                         uint64_t addr, uint8_t am, bool ih) override;
  void OnQueueTailWritten(uint32_t tail) override;
  // SIRTP: the interrupt-entry cache is dropped (QEMU: a global IEC
  // notification).
  void OnInterruptRemapTableChanged(uint64_t irta) override;
  void OnReset() override;

  // InvalidationSink (queued invalidation, from OnQueueTailWritten).
  void InvalidateContext(ContextGranularity g, uint16_t did, uint16_t sid,
                         uint8_t fm) override;
  void InvalidateIotlb(IotlbGranularity g, uint16_t did, Iova addr, uint8_t am,
                       bool ih) override;
  // A DEVIOTLB_UNMAP event on the device's region (nothing if it has none).
  void InvalidateDeviceIotlb(uint16_t sid, Iova addr,
                             uint64_t size_mask) override;
  // Drops the interrupt-entry cache: all of it, or [index, index + 2^mask).
  void InvalidateInterruptEntries(bool global, uint16_t index,
                                  uint8_t index_mask) override;

 private:
  friend class VtdDevice;

  // --- vtd_translate.cc (any thread) ---
  memory::IommuTlbEntry Translate(VtdDevice& dev, Iova iova,
                                  memory::IommuPerm access);
  // QEMU's vtd_qualify_report_fault; `pasid_value` and `pasid_present` as
  // IntelIommu::RecordFault. Records through IntelIommu::RecordFault
  // (thread-safe).
  void ReportFault(uint16_t sid, FaultReason reason, bool fpd, uint64_t addr,
                   bool is_write, uint16_t pasid_value = 0,
                   bool pasid_present = false);
  // The device's context entry for translation (context cache, else the
  // tables).
  ContextLookup GetContext(VtdDevice& dev);
  // The context entry as the tables hold it now (QEMU's control paths
  // re-read it: address-space switch, domain matching, sync).
  ContextLookup ReadContext(const VtdDevice& dev);
  // The same through `mem` (a BurstGuestMemory over mem_).
  ContextLookup ReadContext(const VtdDevice& dev, GuestMemory& mem);

  // --- vtd_engine.cc (control context) ---
  [[nodiscard]] absl::Status NotifyFlagChanged(VtdDevice& dev,
                                               memory::NotifierFlags old_flags,
                                               memory::NotifierFlags new_flags);
  [[nodiscard]] absl::Status Replay(VtdDevice& dev, int idx,
                                    memory::ReplaySink emit);
  // QEMU's vtd_switch_address_space for one / every device.
  void SwitchAddressSpace(VtdDevice& dev);
  void SwitchAll();
  // Drops the IOTLB and the context cache.
  void FlushCaches();

  // --- vtd_sync.cc (control context) ---
  // QEMU's vtd_address_space_sync: bring the shadow of `dev` in line with
  // its page tables over the whole space.
  void SyncDevice(VtdDevice& dev);
  // Shadow sync of [first, last] (PSI with a MAP notifier) or an UNMAP of
  // that range (UNMAP-only notifiers). `ctx`: the device's context entry
  // when the caller has just read it (as QEMU 7.2 hands the entry its PSI
  // matched the domain with to the sync), else it is read here. `burst`:
  // the caller's BurstGuestMemory over mem_, else one is made here.
  void SyncRange(VtdDevice& dev, uint64_t first, uint64_t last,
                 const ContextLookup* ctx = nullptr,
                 GuestMemory* burst = nullptr);
  // Every notified mapping of every device unmapped, spaces switched, and
  // (when `resync`) the shadows rebuilt from the tables.
  void RefreshAll(bool resync);
  void InvalidateContextDevice(uint16_t sid, uint8_t fm);
  void InvalidateContextAll();
  void InvalidateIotlbAndSync(IotlbGranularity granularity, uint16_t did,
                              uint64_t addr, uint8_t am);

  IntelIommu* const iommu_;                // not owned
  memory::MemorySystem* const sys_;        // not owned
  memory::AddressSpace* const system_as_;  // not owned
  const VtdSharedRegions shared_;
  const TableConfig cfg_;
  AddressSpaceGuestMemory mem_;
  // The translation path's reads of guest RAM (lock-free; vtd_ram_window.h).
  RamWindow ram_{system_as_};
  InterruptRemapper remapper_;  // attached to shared_.ir_window

  // Published for Translate on DMA threads.
  std::atomic<bool> dmar_enabled_{false};
  // The root table, | kRootScalable when it is a scalable-mode table (one
  // atomic so a lookup never mixes an old table with a new mode).
  static constexpr uint64_t kRootScalable = 1;
  std::atomic<uint64_t> root_{0};
  Iotlb iotlb_;
  ContextCache context_cache_;
  InvalidationQueue queue_;

  absl::flat_hash_map<uint16_t, std::unique_ptr<VtdDevice>> devices_;
  // The devices with MAP or UNMAP notifiers, in SID order (what a PSI or
  // DSI visits; the rest have nothing to sync): kept by NotifyFlagChanged.
  std::vector<VtdDevice*> iotlb_event_devices_;
  absl::flat_hash_map<uint16_t, devcore::HostIommuDevice> host_devices_;
  std::atomic<uint64_t> walks_{0};
  std::atomic<uint64_t> faults_{0};
  uint64_t syncs_ = 0;  // control context
};

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_ENGINE_H_
