// viommu/hw/iommu/virtio/virtio_iommu.h — the virtio-iommu device
// (VIRTIO 1.2 §5.13) as QEMU 7.2's `-device virtio-iommu-pci` on q35, and
// the machine's vIOMMU (hw/core/viommu.h): domains of mappings, endpoints
// (PCI requester ids) attached to them, a per-endpoint DMA root whose IOMMU
// region translates through the endpoint's domain and sends MAP/UNMAP
// events to its two notifier chains, and faults on the event queue.
//
//   VIOMMU_ASSIGN_OR_RETURN(std::unique_ptr<VirtioIommu> viommu,
//                           VirtioIommu::Create({{"boot-bypass", "off"}}, host));
//   VIOMMU_ASSIGN_OR_RETURN(auto fn, viommu->CreateFunction());
//   bus.Plug(std::move(fn), 0x18);       // the guest drives it at 03.0
//   bus.SetIommu(viommu.get());          // devices plugged from now on
//
// Ownership: the machine owns the VirtioIommu; the PCI function that
// CreateFunction returns (owned by the bus) only refers to it, so the
// vIOMMU state, its per-endpoint regions and their IOMMU models outlive
// every function whose DMA root points at them, whatever order the bus
// destroys functions in. REQUIRES: the VirtioIommu outlives its function.
//
// Behaviour is QEMU 7.2's (docs/virtio-iommu.md lists it), except where
// 7.2 is wrong (each case in docs/virtio-iommu.md "Deviations"): a PROBE
// whose reply buffer is short is answered DEVERR with used length 4
// (QEMU 9.1); an UNMAP that would split a mapping fails with RANGE and
// removes nothing; translation finds exactly the mapping that holds the
// address and never exposes bytes outside it; DETACH forgets the endpoint
// (QEMU 9.1). Beyond QEMU, a passthrough endpoint's host IOMMU facts
// (SetHostIommuDevice) shape PROBE, MAP statuses and the config geometry
// (docs/virtio-iommu.md "Host IOMMU devices").
//
// Threading: everything but Translate runs in the control context.
// Translate may run on any DMA thread (state under a mutex); the faults it
// reports reach the event queue, which is control-context only.
#ifndef VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_H_
#define VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/util/mutex.h"
#include "viommu/util/range.h"
#include "viommu/hw/core/viommu.h"
#include "viommu/hw/iommu/virtio/virtio_iommu_properties.h"
#include "viommu/hw/iommu/virtio/virtio_iommu_regs.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/memory/iommu.h"

namespace viommu::virtio_iommu {

class EndpointSpace;

// Where fault records go (the event queue). Implemented by the PCI
// function while it is realized; tests use a recorder.
class FaultSink {
 public:
  FaultSink() = default;
  FaultSink(const FaultSink&) = delete;
  FaultSink& operator=(const FaultSink&) = delete;
  virtual ~FaultSink() = default;
  // Delivers one 24-byte record. Returns false when it was dropped (no
  // event buffer, device broken).
  virtual bool DeliverFault(std::span<const uint8_t, kFaultSize> record) = 0;
};

// What one request produced: the first `write_len` bytes of the reply
// buffer go to the start of the chain's writable part; the used length
// is `used_len`.
struct RequestResult {
  uint32_t write_len = 0;
  uint32_t used_len = 0;
};

// One mapping of a domain, inclusive [first, last] -> phys.
struct MappingInfo {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t phys = 0;
  uint32_t flags = 0;  // kMapFlag*
  friend bool operator==(const MappingInfo&, const MappingInfo&) = default;
};

class VirtioIommu final : public hw::Viommu {
 public:
  static constexpr std::string_view kDriver = kDriverName;

  // Errors: ParseProperties' (kInvalidArgument, QEMU's wording).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VirtioIommu>> Create(
      const absl::btree_map<std::string, std::string>& props,
      const hw::ViommuHost& host);
  VirtioIommu(const VirtioIommu&) = delete;
  VirtioIommu& operator=(const VirtioIommu&) = delete;
  ~VirtioIommu() override;

  // The virtio-iommu-pci PCI function (virtio modern transport, device
  // id 23, not hot-pluggable) that exposes this device to the guest. It
  // refers to *this. Errors: the transport's Create errors (none expected).
  [[nodiscard]] absl::StatusOr<std::unique_ptr<hw::pci::PciDevice>>
  CreateFunction();

  // --- hw::Viommu ---
  std::string_view driver() const override { return kDriver; }
  // Creates the endpoint's view on first use: root "virtio-iommu-SS.F"
  // with a bypass alias of system memory and the IOMMU region
  // "virtio-iommu-SS.F-iommu"; exactly one is enabled. Every (bus, devfn)
  // asked for becomes a known endpoint id (bus << 8 | devfn) that ATTACH
  // and PROBE accept (QEMU's IOMMUDevice).
  std::shared_ptr<memory::MemoryRegion> DmaRoot(uint8_t bus,
                                                uint8_t devfn) override;
  std::string DmaSpaceName(uint8_t bus, uint8_t devfn) const override;
  // A passthrough function's host IOMMU facts (beyond QEMU 7.2, which
  // ignores them): PROBE of the endpoint reports what the host cannot map
  // (HostReservedRegions), a MAP into its domain that the host cannot take
  // is RANGE, and until the driver sets FEATURES_OK the config's
  // page_size_mask and input_range follow the hosts (CurrentGeometry); the
  // ranges are read again at each use (HostRanges), so a container whose
  // ranges shrink later narrows later PROBEs and MAPs. Its
  // container follows the endpoint's DMA root like any consumer: the
  // system memory alias while bypassed, MAP/UNMAP events otherwise.
  // Errors (the device is not plugged): kFailedPrecondition when the host
  // shares no page size with the config's page_size_mask (after
  // FEATURES_OK: does not map pages of its granule) or its valid ranges
  // leave no input range; the message names hiod.name.
  [[nodiscard]] absl::Status SetHostIommuDevice(
      uint8_t bus, uint8_t devfn,
      const devcore::HostIommuDevice& hiod) override;
  void UnsetHostIommuDevice(uint8_t bus, uint8_t devfn) override;
  // system_reset: every endpoint detached, every domain destroyed, and
  // config.bypass back to `boot-bypass`.
  void Reset() override;

  // --- the device side (the PCI function, and tests) ---
  // Handles one request. `out` holds the chain's readable bytes (at most
  // the first kProbeReqSize are looked at), `in_size` is the size of its
  // writable part; the reply is built in `reply`.
  // REQUIRES: out.size() >= kHeadSize and in_size >= kTailSize (the caller
  // treats a shorter chain as a device error, as QEMU).
  RequestResult HandleRequest(std::span<const uint8_t> out, uint64_t in_size,
                              std::span<uint8_t, kProbeReplySize> reply);
  // Device reset (status 0 or PCI reset): every endpoint detached (UNMAP
  // events for its mappings) and forgotten, every domain destroyed;
  // config.bypass is kept.
  void DeviceReset();
  // The configuration space (kConfigSize bytes).
  void ReadConfig(std::span<uint8_t> config) const;
  // page_size_mask and input_range as the config shows them.
  struct Geometry {
    uint64_t page_size_mask = kPageSizeMask;
    uint64_t input_first = 0;
    uint64_t input_last = ~uint64_t{0};
    friend bool operator==(const Geometry&, const Geometry&) = default;
  };
  // QEMU 7.2's (4 KiB and up, every IOVA) narrowed by every host IOMMU
  // device set: the page sizes they all map (QEMU 9.x), and the IOVAs
  // between the highest first and the lowest last valid IOVA of them.
  Geometry CurrentGeometry() const;
  // The driver set FEATURES_OK: the config's geometry stays as it is now
  // (the spec wants the config stable once features are negotiated) until
  // the next device or system reset. The PCI function calls it.
  void FreezeGeometry() { frozen_ = CurrentGeometry(); }
  std::optional<Geometry> frozen_geometry() const { return frozen_; }
  // A driver write to the configuration space left `bypass_byte` in the
  // bypass field (QEMU compares that byte whatever was written). Errors
  // (the caller makes them a device error, NEEDS_RESET):
  // kFailedPrecondition "cannot set config.bypass" (BYPASS_CONFIG not
  // negotiated), kInvalidArgument for a value other than 0 or 1.
  [[nodiscard]] absl::Status WriteBypass(uint8_t bypass_byte,
                                         bool bypass_config_negotiated);
  // The event queue's sink, or nullptr (faults are then dropped).
  void SetFaultSink(FaultSink* sink) { sink_ = sink; }
  FaultSink* fault_sink() const { return sink_; }
  const hw::ViommuHost& host() const { return host_; }

  // --- translation (the per-endpoint IOMMU models call these) ---
  // Translates `iova` of endpoint `sid` for `access` (kIommuNone: a query,
  // never a fault). A hit returns the largest aligned block around `iova`
  // that lies inside its mapping and keeps iova and phys offsets equal
  // (addr_mask may be 0: one byte). A fault returns perm none with
  // addr_mask 3 (one record per 4-byte chunk, as QEMU's unassigned-memory
  // path) and reports a record unless `access` is kIommuNone.
  memory::IommuTlbEntry Translate(uint16_t sid, Iova iova,
                                  memory::IommuPerm access)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The endpoint's current mappings as MAP entries (power-of-two chunks),
  // O(mappings). Nothing when it is not in a translated domain.
  void Replay(uint16_t sid, memory::ReplaySink emit) ABSL_LOCKS_EXCLUDED(mu_);

  // --- observability (tests, trace) ---
  bool bypass() const ABSL_LOCKS_EXCLUDED(mu_);
  bool boot_bypass() const { return props_.boot_bypass; }
  const Properties& properties() const { return props_; }
  // The domain endpoint `endpoint` is attached to; nullopt when unknown or
  // detached.
  std::optional<uint32_t> EndpointDomain(uint32_t endpoint) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the endpoint is known (attached, or left by a failed ATTACH).
  bool EndpointExists(uint32_t endpoint) const ABSL_LOCKS_EXCLUDED(mu_);
  bool DomainExists(uint32_t domain) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<MappingInfo> DomainMappings(uint32_t domain) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether endpoint `sid`'s DMA root shows the bypass alias (true) or the
  // IOMMU region (false); nullopt for an unknown sid.
  std::optional<bool> EndpointBypassed(uint16_t sid) const;
  // The IOMMU region of endpoint `sid` (its notifier chains), or nullptr.
  memory::MemoryRegion* IommuRegion(uint16_t sid) const;
  uint64_t faults_delivered() const { return faults_delivered_; }
  uint64_t faults_dropped() const { return faults_dropped_; }
  // Passthrough functions with host IOMMU facts (SetHostIommuDevice).
  size_t host_device_count() const { return host_devices_.size(); }
  // What PROBE reports as RESERVED for an endpoint whose host IOMMU is
  // `hiod`: the holes between and above its valid IOVA ranges (none when
  // they are unknown), sorted, without the MSI window (reported as MSI);
  // at most kMaxHostRegions, the last one stretched over any that do not
  // fit in probe_size.
  static constexpr size_t kMaxHostRegions =
      kProbeSize / (kPropertyHeaderSize + kResvMemLength) - 1;
  [[nodiscard]] static std::vector<Range> HostReservedRegions(
      const devcore::HostIommuDevice& hiod);
  // Whether the host IOMMU `hiod` can map [first, last] -> phys: inside
  // one of its valid IOVA ranges (any, when unknown) and, when its page
  // sizes are known, first, phys and last + 1 aligned to the smallest.
  // A MAP into a domain with an endpoint whose host cannot is RANGE.
  static bool HostCanMap(const devcore::HostIommuDevice& hiod, uint64_t first,
                         uint64_t last, uint64_t phys);
  // The host's valid IOVA ranges now: current_iova_ranges() when the host
  // reports changes, else the ranges given at SetHostIommuDevice.
  static const std::vector<Range>& HostRanges(
      const devcore::HostIommuDevice& hiod) {
    return hiod.current_iova_ranges ? hiod.current_iova_ranges()
                                    : hiod.iova_ranges;
  }

 private:
  struct Mapping {
    uint64_t last = 0;
    uint64_t phys = 0;
    uint32_t flags = 0;
  };
  struct Domain {
    bool bypass = false;
    absl::btree_map<uint64_t, Mapping> mappings;  // by first IOVA
    std::vector<uint16_t> endpoints;              // attach order
  };
  // A MAP or UNMAP event to send once mu_ is released.
  struct PendingEvent {
    uint16_t sid = 0;
    bool map = false;
    uint64_t first = 0;
    uint64_t last = 0;
    uint64_t phys = 0;
    uint32_t flags = 0;
  };

  VirtioIommu(Properties props, const hw::ViommuHost& host);

  // Requests (virtio_iommu_requests.cc): each returns the status.
  uint8_t Attach(std::span<const uint8_t> req);
  uint8_t Detach(std::span<const uint8_t> req);
  uint8_t Map(std::span<const uint8_t> req);
  uint8_t Unmap(std::span<const uint8_t> req);
  uint8_t Probe(std::span<const uint8_t> req,
                std::span<uint8_t, kProbeSize> props);

  // Takes `sid` out of its domain, if any (UNMAP events for the domain's
  // mappings), destroying the domain when it was the last endpoint. The
  // endpoint stays known.
  void DetachLocked(uint16_t sid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueDomainEvents(uint16_t sid, const Domain& d, bool map)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool BypassedLocked(uint16_t sid) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Sends pending_ (taken under mu_) and brings every endpoint's view
  // (bypass alias or IOMMU region) up to date. Call without mu_.
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);
  void ReportFault(uint8_t reason, uint32_t flags, uint16_t sid, uint64_t addr);

  Properties props_;
  hw::ViommuHost host_;
  FaultSink* sink_ = nullptr;  // not owned
  absl::flat_hash_map<uint16_t, std::unique_ptr<EndpointSpace>> spaces_;
  absl::flat_hash_map<uint16_t, devcore::HostIommuDevice> host_devices_;
  // The config geometry since FEATURES_OK; nullopt: it follows the hosts.
  std::optional<Geometry> frozen_;

  mutable Mutex mu_;
  bool bypass_ ABSL_GUARDED_BY(mu_);
  absl::btree_map<uint32_t, Domain> domains_ ABSL_GUARDED_BY(mu_);
  // Endpoints: sid -> domain id, nullopt when in none. Created by ATTACH
  // (also one that fails its bypass check, as QEMU), erased by DETACH
  // (QEMU 9.1) and resets.
  absl::btree_map<uint16_t, std::optional<uint32_t>> endpoints_
      ABSL_GUARDED_BY(mu_);
  std::vector<PendingEvent> pending_ ABSL_GUARDED_BY(mu_);
  // Some endpoint may need its view switched (attach, detach, bypass).
  bool views_dirty_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> faults_delivered_{0};
  std::atomic<uint64_t> faults_dropped_{0};
};

}  // namespace viommu::virtio_iommu

#endif  // VIOMMU_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_H_
