// tests/fakes/fake_device_timers.h — a manual virtual clock implementing
// devcore::DeviceTimers for device tests: time moves only by Advance /
// AdvanceTo, which fire due timers in deadline order (ties in arming
// order), each at its own deadline.
//
//   FakeDeviceTimers timers;
//   auto t = timers.CreateTimer([&] { ++fired; });
//   t->ArmAt(100);
//   timers.Advance(99);   // nothing
//   timers.Advance(1);    // fired == 1, NowNs() == 100
//
// Thread-safety: single-threaded tests only.
#ifndef VIOMMU_TESTS_FAKES_FAKE_DEVICE_TIMERS_H_
#define VIOMMU_TESTS_FAKES_FAKE_DEVICE_TIMERS_H_

#include <cstdint>
#include <memory>
#include <set>
#include <utility>

#include "viommu/devcore/device_timers.h"

namespace viommu::vfio::model {

// devcore's interface under the names the host-device tests use (as
// viommu/vfio/host/model/device_timers.h spells them), without making a
// devcore test depend on vfio/.
using devcore::DeviceTimer;
using devcore::DeviceTimers;

class FakeDeviceTimers final : public DeviceTimers {
 public:
  int64_t NowNs() const override { return now_ns_; }

  std::unique_ptr<DeviceTimer> CreateTimer(
      absl::AnyInvocable<void()> callback) override {
    return std::make_unique<Timer>(this, std::move(callback));
  }

  void Advance(int64_t ns) { AdvanceTo(now_ns_ + ns); }
  void AdvanceTo(int64_t target_ns) {
    while (!queue_.empty() && queue_.begin()->deadline <= target_ns) {
      Entry e = *queue_.begin();
      queue_.erase(queue_.begin());
      e.timer->armed_ = false;
      if (e.deadline > now_ns_) now_ns_ = e.deadline;
      e.timer->callback_();
    }
    if (target_ns > now_ns_) now_ns_ = target_ns;
  }
  size_t pending_count() const { return queue_.size(); }

 private:
  class Timer;
  struct Entry {
    int64_t deadline;
    uint64_t seq;
    Timer* timer;
    bool operator<(const Entry& o) const {
      return deadline != o.deadline ? deadline < o.deadline : seq < o.seq;
    }
  };

  class Timer final : public DeviceTimer {
   public:
    Timer(FakeDeviceTimers* owner, absl::AnyInvocable<void()> callback)
        : owner_(owner), callback_(std::move(callback)) {}
    ~Timer() override { Cancel(); }
    void ArmAt(int64_t deadline_ns) override {
      Cancel();
      entry_ = {deadline_ns, owner_->next_seq_++, this};
      owner_->queue_.insert(entry_);
      armed_ = true;
    }
    void Cancel() override {
      if (armed_) owner_->queue_.erase(entry_);
      armed_ = false;
    }
    bool pending() const override { return armed_; }

   private:
    friend class FakeDeviceTimers;
    FakeDeviceTimers* owner_;
    absl::AnyInvocable<void()> callback_;
    Entry entry_{};
    bool armed_ = false;
  };

  int64_t now_ns_ = 0;
  uint64_t next_seq_ = 0;
  std::set<Entry> queue_;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_TESTS_FAKES_FAKE_DEVICE_TIMERS_H_
