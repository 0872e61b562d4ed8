// viommu/memory/table_iommu.h — TableIommu, the reference IOMMU model used by
// tests and the demo: a table of IOVA -> GPA mappings, each an aligned
// power-of-two block (4K, 2M, 1G, or any power of two >= MinPageSize()).
// Every change goes through IommuNotifierChains::NotifyMappingChange(), so
// an in-place change reaches notifiers as UNMAP then MAP.
//
//   TableIommu table(&system_as);
//   auto mr = MemoryRegion::CreateIommu(sys, "table", kSize2To64, &table);
//   table.Attach(mr->iommu());
//   VIOMMU_RETURN_IF_ERROR(table.Map(0x10000, 0x1000, 0x80000, kIommuRead));
//   IommuTlbEntry e = table.Translate(0x10010, kIommuRead, /*iommu_idx=*/0);
//
// Threading: Map, Unmap, Attach, Replay, NotifyFlagChanged and the veto
// setters run in the control context. Translate() may run on any thread,
// concurrently with Map/Unmap: the table is guarded by a mutex (readers in
// Translate). Notifications are sent after the mutex is released, so a
// notifier may call Translate().
#ifndef VIOMMU_MEMORY_TABLE_IOMMU_H_
#define VIOMMU_MEMORY_TABLE_IOMMU_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "viommu/util/mutex.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/util/types.h"

namespace viommu::memory {

class TableIommu final : public IommuModel {
 public:
  struct Options {
    uint64_t min_page_size = 4096;  // a power of two
    // Refuse any flag union containing MAP, as VT-d does without caching
    // mode (kFailedPrecondition from NotifyFlagChanged).
    bool veto_map = false;
  };
  // One call of NotifyFlagChanged(), recorded for tests.
  struct FlagChange {
    NotifierFlags old_flags = kNotifyNone;
    NotifierFlags new_flags = kNotifyNone;
    friend bool operator==(const FlagChange&, const FlagChange&) = default;
  };

  // `target_as` is where translated addresses live (not owned, may be
  // nullptr); it is copied into every entry. REQUIRES: options valid.
  explicit TableIommu(AddressSpace* target_as) : TableIommu(target_as, {}) {}
  TableIommu(AddressSpace* target_as, Options options);

  // The chains of the IOMMU region this model backs (not owned; must
  // outlive this model or be detached with Attach(nullptr)). Until
  // attached, changes are made silently.
  void Attach(IommuNotifierChains* chains) { chains_ = chains; }

  // Maps [iova, iova + size) to [gpa, gpa + size) with `perm`. Replacing a
  // mapping of exactly the same range is an in-place change (UNMAP then
  // MAP; nothing if identical).
  // Errors: kInvalidArgument (size not a power of two or below
  // MinPageSize(), iova or gpa not aligned to size, perm none or unknown);
  // kAlreadyExists (overlaps a mapping of another range; nothing changes).
  [[nodiscard]] absl::Status Map(Iova iova, uint64_t size, Gpa gpa,
                                 IommuPerm perm) ABSL_LOCKS_EXCLUDED(mu_);

  // Removes every mapping inside [iova, iova + size), one UNMAP each in
  // IOVA order. A range holding no mapping is not an error.
  // Errors: kInvalidArgument (size 0, range wraps past 2^64, or a mapping
  // is only partly inside; nothing changes).
  [[nodiscard]] absl::Status Unmap(Iova iova, uint64_t size)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The mapping containing `iova` with its own perm (the caller checks the
  // access); otherwise perm none, iova aligned down to MinPageSize() and
  // addr_mask MinPageSize() - 1. Thread-safe.
  IommuTlbEntry Translate(Iova iova, IommuPerm access, int iommu_idx) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Emits every mapping once, in IOVA order: O(mappings), whatever the
  // region size. The table serves all iommu indexes alike.
  [[nodiscard]] absl::Status Replay(int iommu_idx, ReplaySink emit) override
      ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t MinPageSize() const override { return min_page_size_; }

  // Records the change; vetoes per Options::veto_map.
  [[nodiscard]] absl::Status NotifyFlagChanged(
      NotifierFlags old_flags, NotifierFlags new_flags) override;

  // Number of mappings.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  void set_veto_map(bool veto) { veto_map_ = veto; }
  // The last NotifyFlagChanged() call (vetoed or not), and how many calls.
  std::optional<FlagChange> last_flag_change() const {
    return last_flag_change_;
  }
  int flag_change_calls() const { return flag_change_calls_; }

 private:
  struct Mapping {
    uint64_t size = 0;
    Gpa gpa = 0;
    IommuPerm perm = kIommuNone;
  };

  IommuMapping ToIommuMapping(const Mapping& m) const;
  void Announce(Iova iova, uint64_t addr_mask,
                const std::optional<IommuMapping>& before,
                const std::optional<IommuMapping>& after)
      ABSL_LOCKS_EXCLUDED(mu_);  // notifiers may call Translate

  AddressSpace* const target_as_;  // not owned
  const uint64_t min_page_size_;
  IommuNotifierChains* chains_ = nullptr;  // not owned
  bool veto_map_;
  std::optional<FlagChange> last_flag_change_;
  int flag_change_calls_ = 0;

  mutable Mutex mu_;
  absl::btree_map<Iova, Mapping> table_ ABSL_GUARDED_BY(mu_);  // by IOVA
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_TABLE_IOMMU_H_
