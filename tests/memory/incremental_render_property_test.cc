// Property test: after any sequence of topology changes, the incrementally
// maintained view equals a full re-render, and a listener that applies the
// add/del events it receives holds exactly the view.
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "memory/render.h"
#include "tests/fakes/fake_mmio_device.h"
#include "tests/fakes/view_dump.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"

namespace viommu::memory {
namespace {

using testing::DumpRange;
using testing::DumpView;
using testing::FakeMmioDevice;

std::vector<std::string> FullRender(MemoryRegion& root) {
  std::vector<FlatRange> ranges = RenderWindow(root, Range::Full());
  SimplifyRanges(&ranges);
  std::vector<std::string> out;
  for (const FlatRange& fr : ranges) out.push_back(DumpRange(fr));
  return out;
}

// Mirrors the view from RegionAdd/RegionDel only.
class MirrorListener final : public MemoryListener {
 public:
  void RegionAdd(const MemoryRegionSection& s) override {
    ASSERT_TRUE(sections_.emplace(s.offset_within_address_space, s).second)
        << "add over an existing section at " << s.offset_within_address_space;
  }
  void RegionDel(const MemoryRegionSection& s) override {
    auto it = sections_.find(s.offset_within_address_space);
    ASSERT_NE(it, sections_.end()) << "del of an unknown section";
    ASSERT_EQ(it->second, s) << "del does not match the added section";
    sections_.erase(it);
  }
  void RegionNop(const MemoryRegionSection& s) override {
    auto it = sections_.find(s.offset_within_address_space);
    ASSERT_NE(it, sections_.end()) << "nop of an unknown section";
    ASSERT_EQ(it->second, s);
  }
  std::vector<MemoryRegionSection> Sections() const {
    std::vector<MemoryRegionSection> out;
    for (const auto& [addr, s] : sections_) out.push_back(s);
    return out;
  }

 private:
  std::map<uint64_t, MemoryRegionSection> sections_;
};

std::vector<MemoryRegionSection> ViewSections(const AddressSpace& as) {
  std::vector<MemoryRegionSection> out;
  as.CurrentView()->ForEach(
      [&](const FlatRange& fr) { out.push_back(fr.ToSection()); });
  return out;
}

class RandomTopology {
 public:
  explicit RandomTopology(uint32_t seed) : rng_(seed) {
    root_ = MemoryRegion::CreateContainer(&sys_, "root", 0x100000);
    all_.push_back(root_);
    containers_.push_back(root_);
  }

  MemorySystem& sys() { return sys_; }
  std::shared_ptr<MemoryRegion> root() { return root_; }

  void Step() {
    switch (Pick(10)) {
      case 0:
      case 1:
      case 2:
        AddNew();
        break;
      case 3:
        if (auto r = AttachedNonRoot()) r->parent()->RemoveSubregion(r.get());
        break;
      case 4:
        if (auto r = AnyNonRoot()) r->SetEnabled(!r->enabled());
        break;
      case 5:
        if (auto r = AnyNonRoot()) r->SetReadonly(!r->readonly());
        break;
      case 6:
        if (auto r = AnyNonRoot()) r->SetAddress(Addr());
        break;
      case 7:
        if (auto r = AnyNonRoot()) r->SetSize(Size());
        break;
      case 8:
        if (!aliases_.empty()) {
          aliases_[Pick(aliases_.size())]->SetAliasOffset(Pick(0x8) * 0x1000);
        }
        break;
      case 9:
        if (auto r = AnyNonRoot()) r->SetLogMask(r->log_mask() ^ 4);
        break;
    }
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  uint64_t Addr() { return Pick(0x40) * 0x1000 + (Pick(4) == 0 ? 0x800 : 0); }
  static constexpr uint64_t kMaxSize = 0x10 * 0x1000;
  uint64_t Size() { return (Pick(0x10) + 1) * 0x1000; }

  std::shared_ptr<MemoryRegion> AnyNonRoot() {
    if (all_.size() <= 1) return nullptr;
    return all_[1 + Pick(all_.size() - 1)];
  }
  std::shared_ptr<MemoryRegion> AttachedNonRoot() {
    for (int tries = 0; tries < 8; ++tries) {
      auto r = AnyNonRoot();
      if (r && r->parent()) return r;
    }
    return nullptr;
  }

  void AddNew() {
    std::string name = "r" + std::to_string(all_.size());
    std::shared_ptr<MemoryRegion> r;
    switch (Pick(4)) {
      case 0:
        r = MemoryRegion::CreateContainer(&sys_, name, Size() * 2);
        containers_.push_back(r);
        break;
      case 1:
        // Host memory for the largest size SetSize can pick.
        r = *MemoryRegion::CreateRam(&sys_, name, kMaxSize);
        r->SetSize(Size());
        break;
      case 2:
        r = MemoryRegion::CreateMmio(&sys_, name, Size(), &dev_);
        break;
      case 3: {
        // Alias a container or RAM that is not an ancestor-to-be: aliasing
        // only regions created earlier and never adding subregions to
        // aliases keeps the graph acyclic as long as the target is not
        // the container we attach to; retry otherwise.
        auto target = all_[Pick(all_.size())];
        if (target == root_) return;
        r = MemoryRegion::CreateAlias(&sys_, name, target, Pick(4) * 0x1000,
                                      Size());
        aliases_.push_back(r);
        break;
      }
    }
    auto parent = containers_[Pick(containers_.size())];
    if (parent == r || Reaches(r.get(), parent.get())) return;
    parent->AddSubregionOverlap(Addr(), r, static_cast<int32_t>(Pick(5)) - 2);
    all_.push_back(r);
  }

  // True if `from` (or what it aliases/contains) reaches `to`.
  static bool Reaches(MemoryRegion* from, MemoryRegion* to, int depth = 0) {
    if (from == to) return true;
    if (depth > 32) return true;
    if (from->alias_target() && Reaches(from->alias_target(), to, depth + 1)) {
      return true;
    }
    bool found = false;
    from->ForEachSubregion([&](MemoryRegion* c) {
      found = found || Reaches(c, to, depth + 1);
    });
    return found;
  }

  MemorySystem sys_;
  FakeMmioDevice dev_{0x100000};
  std::mt19937 rng_;
  std::shared_ptr<MemoryRegion> root_;
  std::vector<std::shared_ptr<MemoryRegion>> all_;
  std::vector<std::shared_ptr<MemoryRegion>> containers_;
  std::vector<std::shared_ptr<MemoryRegion>> aliases_;
};

class IncrementalRenderPropertyTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(IncrementalRenderPropertyTest, ViewAndListenerMatchFullRender) {
  RandomTopology topo(GetParam());
  AddressSpace as(&topo.sys(), topo.root(), "as");
  MirrorListener mirror;
  ListenerHandle h = as.RegisterListener(&mirror);
  std::mt19937 batch_rng(GetParam() * 7 + 1);
  for (int step = 0; step < 300; ++step) {
    {
      MemorySystem::Transaction txn(&topo.sys());
      int n = 1 + static_cast<int>(batch_rng() % 3);
      for (int i = 0; i < n; ++i) topo.Step();
    }
    ASSERT_EQ(DumpView(as), FullRender(*topo.root())) << "step " << step;
    ASSERT_EQ(mirror.Sections(), ViewSections(as)) << "step " << step;
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, IncrementalRenderPropertyTest,
                         ::testing::Range(1u, 21u));

}  // namespace
}  // namespace viommu::memory
