// viommu/hw/core/virtual_clock.h — the machine's virtual clock (QEMU's
// QEMU_CLOCK_VIRTUAL under qtest): nanoseconds that advance only when told
// (qtest clock_step/clock_set, or the embedder), and one-shot timers that
// fire while it advances.
//
//   VirtualClock clock;
//   Timer t(&clock, [&] { dma.Complete(); });
//   t.ArmAt(clock.now_ns() + 100'000'000);      // 100 ms of virtual time
//   clock.Step(100'000'000);                      // t's callback runs here
//
// Semantics (QEMU's qtest_clock_step / timerlist_run_timers):
//  * Step(ns) and AdvanceTo(t) run every timer whose deadline is <= the new
//    time, in deadline order (arming order among equal deadlines); the
//    clock reads each timer's deadline while its callback runs, and the
//    target time after the last one. A callback may arm, re-arm or cancel
//    any timer; one armed at or before the target also runs.
//  * StepToNextDeadline() advances exactly to the earliest deadline and
//    runs the timers due then; with none armed it returns nullopt and the
//    time does not move (qtest's "FAIL cannot advance clock").
//  * Time never goes back: AdvanceTo(t < now) leaves the time unchanged
//    (timers already due, armed in the past, still run).
//  * Destroying the clock disarms the timers still armed on it.
// The clock is viommu's one timer interface, devcore::DeviceTimers
// (devcore/include/viommu/devcore/device_timers.h), and Timer its DeviceTimer, so
// device models below hw/ (devcore::EduEngine, vfio/host/model's simulated
// host devices) run on it directly.
//
// Threading: control context only.
#ifndef VIOMMU_HW_CORE_VIRTUAL_CLOCK_H_
#define VIOMMU_HW_CORE_VIRTUAL_CLOCK_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "viommu/devcore/device_timers.h"

namespace viommu::hw {

class Timer;

class VirtualClock final : public devcore::DeviceTimers {
 public:
  VirtualClock() = default;
  // Disarms every timer still armed. REQUIRES: no Timer on this clock is
  // armed again afterwards.
  ~VirtualClock() override;

  int64_t now_ns() const { return now_ns_; }
  // devcore::DeviceTimers: now_ns(), and a new unarmed Timer on this clock.
  int64_t NowNs() const override { return now_ns_; }
  std::unique_ptr<devcore::DeviceTimer> CreateTimer(
      absl::AnyInvocable<void()> callback) override;
  // Advances by `ns` (>= 0) and returns the new time.
  int64_t Step(int64_t ns);
  // Advances to `target_ns` if it is in the future; returns the new time.
  int64_t AdvanceTo(int64_t target_ns);
  // Advances to the earliest armed deadline and returns it; nullopt (and
  // no change) when no timer is armed.
  std::optional<int64_t> StepToNextDeadline();
  // The earliest armed deadline, if any.
  std::optional<int64_t> NextDeadline() const;
  // Back to time 0, as a new clock (fuzzers that reuse one machine per
  // process: QEMU's system_reset keeps the clock running, an input's
  // replies must not). REQUIRES: no timer armed.
  void Rewind();

 private:
  friend class Timer;
  using Key = std::pair<int64_t, uint64_t>;  // (deadline, arming sequence)
  Key Insert(int64_t deadline, Timer* timer);
  void Erase(const Key& key) { armed_.erase(key); }

  int64_t now_ns_ = 0;
  uint64_t seq_ = 0;
  absl::btree_map<Key, Timer*> armed_;
};

// A one-shot timer; re-arm from the callback for periodic behaviour.
// Move-less; cancels itself on destruction.
class Timer final : public devcore::DeviceTimer {
 public:
  Timer(VirtualClock* clock, absl::AnyInvocable<void()> callback);
  ~Timer() override { Cancel(); }

  // Arms (or re-arms) the timer for `deadline_ns`. A deadline in the past
  // fires at the next Step/AdvanceTo (even Step(0)).
  void ArmAt(int64_t deadline_ns) override;
  void Cancel() override;
  bool armed() const { return armed_; }
  bool pending() const override { return armed_; }
  int64_t deadline_ns() const { return key_.first; }

 private:
  friend class VirtualClock;
  VirtualClock* clock_;  // not owned, outlives this
  absl::AnyInvocable<void()> callback_;
  bool armed_ = false;
  VirtualClock::Key key_{0, 0};
};

}  // namespace viommu::hw

#endif  // VIOMMU_HW_CORE_VIRTUAL_CLOCK_H_
