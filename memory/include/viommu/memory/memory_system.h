// viommu/memory/memory_system.h — the control context of one guest memory
// topology: transactions, the rendered views of every root that has an
// address space, and listener notification at commit. QEMU keeps this
// state in globals; viommu keeps it in one object so tests, fuzzers and
// several machines can each have their own.
//
//   MemorySystem sys;
//   {
//     MemorySystem::Transaction txn(&sys);     // nests
//     root->AddSubregion(0, ram);
//     root->AddSubregion(0x1000'0000, mmio);
//   }                                          // one commit, one diff
//
// Commit cost: only roots whose topology changed are re-rendered, and only
// in the windows (address ranges) the changed regions cover, so adding or
// removing one region in a view of N ranges costs O(log N + ranges
// changed), not a full re-render.
//
// Threading: everything here is control-context only, and the control
// context is single-threaded (QEMU's BQL role): topology mutations,
// listener callbacks, registration. Accesses (AddressSpace::Read/Write/
// Translate) may run on other threads concurrently.
#ifndef VIOMMU_MEMORY_MEMORY_SYSTEM_H_
#define VIOMMU_MEMORY_MEMORY_SYSTEM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "viommu/memory/flat_view.h"
#include "viommu/util/range.h"

namespace viommu::memory {

class AddressSpace;
class MemoryListener;
class MemoryRegion;

class MemorySystem {
 public:
  // Counters for tests and benchmarks.
  struct Stats {
    uint64_t commits = 0;          // outermost commits with changes
    uint64_t full_renders = 0;     // whole-view renders (new roots)
    uint64_t window_renders = 0;   // incremental window renders
  };

  MemorySystem();
  MemorySystem(const MemorySystem&) = delete;
  MemorySystem& operator=(const MemorySystem&) = delete;
  // REQUIRES: every AddressSpace of this system is destroyed first.
  ~MemorySystem();

  void BeginTransaction();
  // The outermost commit re-renders what changed, publishes the new views
  // and notifies listeners. REQUIRES: a matching BeginTransaction.
  void CommitTransaction();
  int transaction_depth() const { return depth_; }

  // RAII BeginTransaction/CommitTransaction.
  class Transaction {
   public:
    explicit Transaction(MemorySystem* system) : system_(system) {
      system_->BeginTransaction();
    }
    ~Transaction() { system_->CommitTransaction(); }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

   private:
    MemorySystem* system_;
  };

  const Stats& stats() const { return stats_; }

 private:
  friend class MemoryRegion;
  friend class AddressSpace;

  struct RootState;
  struct ViewDiff;
  struct GlobalListener {
    MemoryListener* listener;  // not owned
    unsigned priority;
    uint64_t seq;
  };

  // Called by MemoryRegion before and after each change: records the
  // windows of every root view the region appears in.
  void RegionChanged(MemoryRegion* region);
  void CollectWindows(MemoryRegion* region, const Range& window, int depth);
  uint64_t NextSiblingSeq() { return ++sibling_seq_; }

  // Called by AddressSpace.
  std::shared_ptr<const FlatView> AttachAddressSpace(AddressSpace* as);
  void DetachAddressSpace(AddressSpace* as);
  uint64_t AddGlobalListener(MemoryListener* listener, unsigned priority);
  void RemoveGlobalListener(MemoryListener* listener);

  // Commit steps.
  void UpdateRoot(RootState& rs, ViewDiff* diff);
  void NotifyListeners(AddressSpace& as, const ViewDiff& diff);

  int depth_ = 0;
  bool pending_ = false;
  bool notifying_ = false;  // listener callbacks are running
  uint64_t sibling_seq_ = 0;
  uint64_t listener_seq_ = 0;
  Stats stats_;
  absl::flat_hash_map<const MemoryRegion*, std::unique_ptr<RootState>> roots_;
  std::vector<AddressSpace*> address_spaces_;  // creation order; not owned
  std::vector<GlobalListener> listeners_;      // ascending (priority, seq)
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_MEMORY_SYSTEM_H_
