// viommu/memory/iommu.h — what an IOMMU model (a vIOMMU such as VT-d)
// implements to back an IOMMU memory region, and the translation/event
// vocabulary shared by producers and consumers of IOMMU notifications.
//
//   class MyIommu final : public IommuModel {
//     IommuTlbEntry Translate(Iova iova, IommuPerm access, int idx) override;
//     absl::Status Replay(int idx, ReplaySink emit) override;
//   };
//   auto mr = MemoryRegion::CreateIommu(sys, "dmar", kSize2To64, &my_iommu);
//   // Producers announce changes through mr->iommu()->NotifyMappingChange().
//
// See iommu_notifier_chains.h for registration and dispatch.
#ifndef VIOMMU_MEMORY_IOMMU_H_
#define VIOMMU_MEMORY_IOMMU_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "viommu/memory/mem_tx.h"
#include "viommu/util/range.h"
#include "viommu/util/types.h"

namespace viommu::memory {

class AddressSpace;

// Access permissions of a translation (QEMU's IOMMUAccessFlags, low bits).
enum IommuPerm : uint8_t {
  kIommuNone = 0,
  kIommuRead = 1,
  kIommuWrite = 2,
  kIommuReadWrite = 3,
};

// One translation: [iova, iova + addr_mask] maps to
// [translated_addr, translated_addr + addr_mask] in `target_as`.
// addr_mask is normally 2^n - 1 (cropping to a notifier range may break
// that). perm == kIommuNone means "no translation" (or an UNMAP event).
struct IommuTlbEntry {
  AddressSpace* target_as = nullptr;  // not owned
  Iova iova = 0;
  Hwaddr translated_addr = 0;
  uint64_t addr_mask = 0;
  IommuPerm perm = kIommuNone;

  Range IovaRange() const { return {iova, iova + addr_mask}; }
  friend bool operator==(const IommuTlbEntry&, const IommuTlbEntry&) = default;
};

// Notifier event kinds and flag sets (QEMU's IOMMUNotifierFlag values).
using NotifierFlags = uint8_t;
inline constexpr NotifierFlags kNotifyNone = 0;
inline constexpr NotifierFlags kNotifyUnmap = 1 << 0;
inline constexpr NotifierFlags kNotifyMap = 1 << 1;
inline constexpr NotifierFlags kNotifyDevIotlbUnmap = 1 << 2;
inline constexpr NotifierFlags kNotifyIotlbEvents = kNotifyMap | kNotifyUnmap;
inline constexpr NotifierFlags kNotifyAll =
    kNotifyIotlbEvents | kNotifyDevIotlbUnmap;

enum class IommuEventType : uint8_t {
  kUnmap = kNotifyUnmap,
  kMap = kNotifyMap,
  kDevIotlbUnmap = kNotifyDevIotlbUnmap,
};

struct IommuEvent {
  IommuEventType type = IommuEventType::kMap;
  IommuTlbEntry entry;  // for UNMAP events, perm is kIommuNone
  friend bool operator==(const IommuEvent&, const IommuEvent&) = default;
};

// Called by IommuModel::Replay once per existing mapping. The framework
// turns each call into a MAP event for the one notifier being replayed.
using ReplaySink = absl::FunctionRef<void(const IommuTlbEntry&)>;

// The model behind an IOMMU region. Not owned by the region; must outlive
// it. Translate() may be called from any thread that performs DMA (see
// address_space.h) and must be thread-safe; the other methods are called
// from the control context only.
class IommuModel {
 public:
  IommuModel() = default;
  IommuModel(const IommuModel&) = delete;
  IommuModel& operator=(const IommuModel&) = delete;
  virtual ~IommuModel() = default;

  // Required. Translates `iova` for an access of kind `access`
  // (kIommuNone: walk fully and report the full permissions). Returns an
  // entry with perm == kIommuNone when there is no translation; the caller
  // checks the permission it needs.
  virtual IommuTlbEntry Translate(Iova iova, IommuPerm access,
                                  int iommu_idx) = 0;

  // Optional. Calls emit(entry) for every existing mapping of `iommu_idx`,
  // in time proportional to the mappings that exist. The default returns
  // kUnimplemented: the framework never walks the address space page by
  // page on a model's behalf.
  [[nodiscard]] virtual absl::Status Replay(int iommu_idx, ReplaySink emit);

  // Optional: smallest page the model maps (default 4 KiB).
  virtual uint64_t MinPageSize() const { return 4096; }
  // Optional: number of translation indexes (default 1) and how
  // transaction attributes select one (default 0).
  virtual int NumIndexes() const { return 1; }
  virtual int AttrsToIndex(const MemTxAttrs& /*attrs*/) const { return 0; }

  // Optional. Called when the union of notifier flags over all chains
  // changes; a non-OK status vetoes the registration that caused it, which
  // is then undone. Unregistration cannot be vetoed (the result is
  // ignored). Default: accept.
  [[nodiscard]] virtual absl::Status NotifyFlagChanged(
      NotifierFlags /*old_flags*/, NotifierFlags /*new_flags*/) {
    return absl::OkStatus();
  }
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_IOMMU_H_
