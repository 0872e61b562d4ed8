// viommu/vfio/container.h — VfioContainer, the base of a VFIO container
// (QEMU's VFIOContainerBase): one host IOMMU context (a type1 container or
// an iommufd IOAS) that mirrors one guest AddressSpace through a listener.
//
//   // Made by Type1Container::Create / IommufdContainer::Create, usually
//   // through VfioManager::AttachDevice.
//   VfioContainer* c = ...;
//   c->Query();                  // x-query-vfio record
//   c->HostIommuInfo();          // for the vIOMMU (aw bits, page sizes)
//   c->mappings();               // iova -> {size, hva, readonly}
//
// The ops interface (QEMU's VFIOIOMMUClass) is the protected pure virtual
// part: HostMap, HostUnmap, ReadIovaInfo, ReleaseHost; Type1Container and
// IommufdContainer implement it. Everything above those calls (range
// splitting, the mapping table, skipped ranges, error policy, the listener)
// is shared and never knows which backend answers.
//
// Error policy (ARCHITECTURE.md §4): until initialized() — i.e. while the
// listener replays the AddressSpace during attach — the first error is
// kept and fails the attach (StartListening returns it). Afterwards errors
// are counted (stats().errors), kept in last_error() and passed to the
// error callback; the container keeps working. Never aborts.
//
// Callback order: the error and ranges-changed callbacks run synchronously
// in the control context from inside DmaMap/listener callbacks; they must
// not destroy the container or change the memory topology.
//
// Thread-safety: control context only (QEMU's BQL role), like the
// AddressSpace listener callbacks that drive it.
#ifndef VIOMMU_VFIO_CONTAINER_H_
#define VIOMMU_VFIO_CONTAINER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_listener.h"
#include "viommu/util/range.h"
#include "viommu/vfio/container_types.h"
#include "viommu/vfio/host/host_backend.h"

namespace viommu::vfio {

class ContainerListener;

struct ContainerOptions {
  // Host page size for section rounding; 0 = the process's page size.
  uint64_t host_page_size = 0;
  // Called for each error after initialisation (see file comment).
  std::function<void(const absl::Status&)> on_error;
  // Called for each warning (a BAR the host refused to map: QEMU's P2P
  // warning), which is also logged as guest_errors; for embedders that
  // route logs themselves.
  std::function<void(const absl::Status&)> on_warning;
  // Called after a re-read found different IOVA ranges (QMP
  // VFIO_IOVA_RANGES_CHANGED).
  std::function<void(const std::vector<Range>& new_ranges)>
      on_iova_ranges_changed;
};

class VfioContainer {
 public:
  VfioContainer(const VfioContainer&) = delete;
  VfioContainer& operator=(const VfioContainer&) = delete;
  virtual ~VfioContainer();

  uint32_t id() const { return id_; }
  ContainerBackend backend() const { return backend_; }
  memory::AddressSpace* address_space() const { return as_; }
  bool initialized() const { return initialized_; }

  // Valid IOVA ranges (inclusive, sorted, disjoint); empty means unknown,
  // treated as the whole 64-bit space.
  const std::vector<Range>& iova_ranges() const { return iova_ranges_; }
  uint64_t page_size_mask() const { return pgsizes_; }
  // Smallest host IOMMU page (1 << ctz(page_size_mask())), at least 4 KiB
  // when the mask is unknown.
  uint64_t MinIommuPage() const;
  uint64_t host_page_size() const { return host_page_; }
  // Mapping limit (type1 DMA_AVAIL at setup; UINT32_MAX for iommufd) and
  // what remains of it.
  uint64_t dma_limit() const { return dma_limit_; }
  uint64_t dma_avail() const;

  const std::map<Iova, DmaMapping>& mappings() const { return mappings_; }
  std::vector<SkippedRange> skipped() const;
  const ContainerStats& stats() const { return stats_; }
  const absl::Status& last_error() const { return last_error_; }
  // Device names (host BDFs) attached, in attach order.
  const std::vector<std::string>& devices() const { return devices_; }

  // Host IOMMU facts (QEMU's HostIOMMUDevice): aw_bits is the bit count of
  // the highest valid IOVA; `name` is left empty for the caller to set;
  // map_failures reads stats().giommu_map_errors and current_iova_ranges
  // iova_ranges() (both valid while *this is).
  devcore::HostIommuDevice HostIommuInfo() const;
  ContainerQuery Query() const;

  // --- DMA, used by the listener (and directly by tests) ----------------
  // Maps [iova, iova + size) to hva. Parts outside iova_ranges() are not
  // mapped but recorded as skipped ("outside-iova-ranges"); the rest is
  // mapped piece by piece. A host EINVAL triggers exactly one re-read of
  // the IOVA ranges; if they changed, the in-range pieces are retried once.
  // Errors: the host's (HostCallError: errno, op, args). Does not report
  // the error; the caller decides (listener policy).
  // REQUIRES: size > 0; iova + size - 1 does not wrap.
  [[nodiscard]] absl::Status DmaMap(Iova iova, uint64_t size, Hva hva,
                                    bool readonly);
  // Unmaps every table mapping that overlaps [iova, iova + size): whole
  // mappings with one host call each, partly covered ones only in the
  // intersection; when the request covers every mapping of the table and
  // the host can unmap everything at once (HostUnmapAll), with one call.
  // Nothing mapped there is not an error.
  // Errors: the first host error (the others are still attempted).
  [[nodiscard]] absl::Status DmaUnmap(Iova iova, Size128 size);
  // Unmaps everything in the table (DmaUnmap of the 2^64 span): one host
  // call when the host can unmap everything at once (type1
  // VFIO_DMA_UNMAP_FLAG_ALL, iommufd iova 0 length 2^64-1), else one per
  // mapping. A 2^64-byte span never reaches the host as one size: QEMU
  // splits it in two halves because it does not know what is mapped; this
  // table does, so it unmaps what is there.
  [[nodiscard]] absl::Status UnmapAll();

  // Error policy hooks (see file comment).
  void ReportError(const absl::Status& status);
  void ReportWarning(const absl::Status& status);
  // An error caused by guest IOMMU programming (a MAP to non-RAM, ...):
  // counted and passed to on_error even before initialisation; it never
  // fails the attach (QEMU only reports these).
  void ReportGuestError(const absl::Status& status);
  void RecordSkipped(const Range& range, SkipReason reason);
  // Forgets skipped ranges that lie inside `range`.
  void ForgetSkipped(const Range& range);

 protected:
  VfioContainer(ContainerBackend backend, HostBackend* host,
                memory::AddressSpace* as, uint32_t id,
                ContainerOptions options);

  // --- ops (QEMU's VFIOIOMMUClass) --------------------------------------
  [[nodiscard]] virtual absl::Status HostMap(Iova iova, uint64_t size, Hva hva,
                                             bool readonly) = 0;
  [[nodiscard]] virtual absl::Status HostUnmap(Iova iova, uint64_t size) = 0;
  // Whether HostUnmapAll is available (type1: CHECK_EXTENSION(UNMAP_ALL)).
  virtual bool HasUnmapAll() const { return false; }
  // Unmaps everything at the host in one call. Called only when
  // HasUnmapAll().
  [[nodiscard]] virtual absl::Status HostUnmapAll() {
    return absl::InternalError("HostUnmapAll without HasUnmapAll");
  }
  // Re-reads the valid IOVA ranges (and page sizes) into the setters below.
  [[nodiscard]] virtual absl::Status ReadIovaInfo() = 0;
  // Detaches every device/group and closes host objects. Called once by
  // Shutdown() after every mapping is gone.
  virtual void ReleaseHost() = 0;

  // Registers the listener (which replays the AddressSpace) and marks the
  // container initialised. Errors: the first error seen during the replay,
  // after which the listener is unregistered and every mapping removed.
  [[nodiscard]] absl::Status StartListening();
  // Unregisters the listener, unmaps everything, then ReleaseHost(). Safe to
  // call more than once. Subclass destructors call it.
  void Shutdown();

  // ReadIovaInfo(), then, when the ranges differ from before, counts the
  // change, records "iova ranges changed" in last_error() and calls
  // on_iova_ranges_changed. Errors: ReadIovaInfo's.
  [[nodiscard]] absl::Status RefreshIovaRanges(bool* changed);

  void set_iova_ranges(std::vector<Range> ranges);
  void set_page_size_mask(uint64_t mask) { pgsizes_ = mask; }
  void set_dma_limit(uint64_t limit) { dma_limit_ = limit; }
  void AddDeviceName(std::string name) { devices_.push_back(std::move(name)); }
  void RemoveDeviceName(const std::string& name);
  HostBackend* host() const { return host_; }

 private:
  friend class ContainerListener;
  // DmaMap without the EINVAL re-read: maps the pieces of [iova, last]
  // inside iova_ranges_, recording the holes.
  [[nodiscard]] absl::Status MapPieces(Iova iova, uint64_t last, Hva hva,
                                       bool readonly, bool record_holes,
                                       bool* einval);
  [[nodiscard]] absl::Status MapOne(Iova iova, uint64_t size, Hva hva,
                                    bool readonly);

  const ContainerBackend backend_;
  HostBackend* const host_;         // not owned; outlives this
  memory::AddressSpace* const as_;  // not owned; outlives this
  const uint32_t id_;
  ContainerOptions options_;
  uint64_t host_page_;

  std::vector<Range> iova_ranges_;
  uint64_t pgsizes_ = 0;
  uint64_t dma_limit_ = UINT32_MAX;
  // A red-black tree, not a B-tree: with a B-tree, a map+unmap pair next
  // to a full leaf splits and re-merges it every time (1.2 us per pair at
  // 100k mappings, 82 ns on an empty table, vs 52 and 32 ns here;
  // tests/bench/vfio_container_bench.cc). The price is ~0.4 us more per
  // mapping when 100k are appended in IOVA order (BM_StackMapThroughput).
  std::map<Iova, DmaMapping> mappings_;
  absl::btree_map<uint64_t, SkippedRange> skipped_;  // by start
  std::vector<std::string> devices_;
  ContainerStats stats_;
  absl::Status first_error_;  // before initialisation
  absl::Status last_error_;
  bool initialized_ = false;
  bool shut_down_ = false;

  std::unique_ptr<ContainerListener> listener_;
  memory::ListenerHandle listener_handle_;  // reset before listener_
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_CONTAINER_H_
