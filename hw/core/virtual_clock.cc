// The virtual clock and its timers: QEMU's qtest_clock_warp and
// timerlist_run_timers, single-threaded.
#include "viommu/hw/core/virtual_clock.h"

#include <algorithm>
#include <utility>

#include "viommu/util/check.h"

namespace viommu::hw {

VirtualClock::~VirtualClock() {
  for (auto& [key, timer] : armed_) timer->armed_ = false;
  armed_.clear();
}

void VirtualClock::Rewind() {
  VIOMMU_CHECK(armed_.empty());
  now_ns_ = 0;
  seq_ = 0;
}

int64_t VirtualClock::Step(int64_t ns) {
  return AdvanceTo(now_ns_ + std::max<int64_t>(ns, 0));
}

int64_t VirtualClock::AdvanceTo(int64_t target_ns) {
  const int64_t target = std::max(target_ns, now_ns_);
  // A callback may arm, re-arm or cancel any timer, so take the earliest
  // one afresh after every callback.
  while (!armed_.empty() && armed_.begin()->first.first <= target) {
    auto it = armed_.begin();
    Timer* timer = it->second;
    now_ns_ = std::max(now_ns_, it->first.first);
    armed_.erase(it);
    timer->armed_ = false;
    timer->callback_();
  }
  now_ns_ = target;
  return now_ns_;
}

std::optional<int64_t> VirtualClock::StepToNextDeadline() {
  std::optional<int64_t> next = NextDeadline();
  if (!next.has_value()) return std::nullopt;
  return AdvanceTo(std::max(*next, now_ns_));
}

std::optional<int64_t> VirtualClock::NextDeadline() const {
  if (armed_.empty()) return std::nullopt;
  return armed_.begin()->first.first;
}

VirtualClock::Key VirtualClock::Insert(int64_t deadline, Timer* timer) {
  Key key{deadline, seq_++};
  armed_.emplace(key, timer);
  return key;
}

std::unique_ptr<devcore::DeviceTimer> VirtualClock::CreateTimer(
    absl::AnyInvocable<void()> callback) {
  return std::make_unique<Timer>(this, std::move(callback));
}

Timer::Timer(VirtualClock* clock, absl::AnyInvocable<void()> callback)
    : clock_(clock), callback_(std::move(callback)) {}

void Timer::ArmAt(int64_t deadline_ns) {
  Cancel();
  key_ = clock_->Insert(deadline_ns, this);
  armed_ = true;
}

void Timer::Cancel() {
  if (!armed_) return;
  clock_->Erase(key_);
  armed_ = false;
}

}  // namespace viommu::hw
