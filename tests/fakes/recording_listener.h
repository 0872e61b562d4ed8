// tests/fakes/recording_listener.h — a MemoryListener that records every
// callback as one line of text, for ordering assertions:
//
//   RecordingListener l("A");
//   auto h = as.RegisterListener(&l);
//   EXPECT_THAT(l.events(), ElementsAre("A begin", "A add ram@0x0+0x1000",
//                                       "A commit"));
#ifndef VIOMMU_TESTS_FAKES_RECORDING_LISTENER_H_
#define VIOMMU_TESTS_FAKES_RECORDING_LISTENER_H_

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "viommu/memory/memory_listener.h"

namespace viommu::memory::testing {

class RecordingListener final : public MemoryListener {
 public:
  // `log` may be shared between listeners to observe their interleaving.
  explicit RecordingListener(std::string tag,
                             std::vector<std::string>* log = nullptr)
      : tag_(std::move(tag)), log_(log ? log : &own_) {}

  void Begin() override { Add("begin"); }
  void Commit() override { Add("commit"); }
  void RegionAdd(const MemoryRegionSection& s) override {
    Add("add " + Describe(s));
  }
  void RegionDel(const MemoryRegionSection& s) override {
    Add("del " + Describe(s));
  }
  void RegionNop(const MemoryRegionSection& s) override {
    Add("nop " + Describe(s));
  }
  void LogStart(const MemoryRegionSection& s, uint8_t o, uint8_t n) override {
    Add(absl::StrFormat("log_start %s %d->%d", Describe(s), o, n));
  }
  void LogStop(const MemoryRegionSection& s, uint8_t o, uint8_t n) override {
    Add(absl::StrFormat("log_stop %s %d->%d", Describe(s), o, n));
  }
  void LogSync(const MemoryRegionSection& s) override {
    Add("log_sync " + Describe(s));
  }

  // "name@start+size" plus "+off" when the offset in region is not 0 and
  // " ro" when readonly.
  static std::string Describe(const MemoryRegionSection& s) {
    std::string out = absl::StrFormat(
        "%s@0x%x+0x%x", s.mr->name(), s.offset_within_address_space,
        static_cast<uint64_t>(s.size == kSize2To64 ? 0 : s.size));
    if (s.size == kSize2To64) out += "(2^64)";
    if (s.offset_within_region != 0) {
      out += absl::StrFormat(" off=0x%x", s.offset_within_region);
    }
    if (s.readonly) out += " ro";
    return out;
  }

  const std::vector<std::string>& events() const { return *log_; }
  void Clear() { log_->clear(); }

 private:
  void Add(const std::string& what) { log_->push_back(tag_ + " " + what); }

  std::string tag_;
  std::vector<std::string> own_;
  std::vector<std::string>* log_;
};

}  // namespace viommu::memory::testing

#endif  // VIOMMU_TESTS_FAKES_RECORDING_LISTENER_H_
