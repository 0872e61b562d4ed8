// viommu/devcore/device_timers.h — the virtual-time scheduling a device
// model needs: the one timer interface of viommu. hw::VirtualClock (the
// machine clock qtest's clock_step advances) implements it, hw::Timer is
// its timer; the simulated host devices of vfio/host/model and the shared
// device engines (devcore::EduEngine) take it; tests use a manual fake
// (tests/fakes/fake_device_timers.h).
//
//   std::unique_ptr<DeviceTimer> t = timers->CreateTimer([this] { Fire(); });
//   t->ArmAt(timers->NowNs() + 100'000'000);   // 100 ms of virtual time
//   t->Cancel();                                // or let it fire once
//
// Contract for implementations:
//  * NowNs() is virtual time in nanoseconds; it never goes backwards.
//  * A timer fires at most once per ArmAt, on the control context, when
//    virtual time reaches its deadline (a deadline in the past fires at the
//    next opportunity, never inside ArmAt itself). ArmAt on a pending timer
//    moves its deadline (QEMU's timer_mod).
//  * The callback may re-arm its own timer. It never runs after Cancel() or
//    after the DeviceTimer is destroyed.
// Thread-safety: control context only.
#ifndef VIOMMU_DEVCORE_DEVICE_TIMERS_H_
#define VIOMMU_DEVCORE_DEVICE_TIMERS_H_

#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"

namespace viommu::devcore {

// One re-armable one-shot timer. Destroying it cancels it.
class DeviceTimer {
 public:
  DeviceTimer() = default;
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;
  virtual ~DeviceTimer() = default;

  // Fire at absolute virtual time `deadline_ns` (replacing a pending one).
  virtual void ArmAt(int64_t deadline_ns) = 0;
  // No-op when not pending.
  virtual void Cancel() = 0;
  virtual bool pending() const = 0;
};

class DeviceTimers {
 public:
  DeviceTimers() = default;
  DeviceTimers(const DeviceTimers&) = delete;
  DeviceTimers& operator=(const DeviceTimers&) = delete;
  virtual ~DeviceTimers() = default;

  virtual int64_t NowNs() const = 0;
  // A new unarmed timer running `callback` when it fires. The returned
  // timer must not outlive this DeviceTimers.
  virtual std::unique_ptr<DeviceTimer> CreateTimer(
      absl::AnyInvocable<void()> callback) = 0;
};

}  // namespace viommu::devcore

#endif  // VIOMMU_DEVCORE_DEVICE_TIMERS_H_
