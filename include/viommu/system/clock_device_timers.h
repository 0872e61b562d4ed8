// viommu/system/clock_device_timers.h — vfio::model::DeviceTimers on the
// machine's virtual clock, so a simulated host device's DMA (edu: 100 ms)
// completes on qtest clock_step exactly like the guest edu's.
//
//   ClockDeviceTimers timers(&machine->clock());
//   ModelHost host(platform, {.device_factory = ModelHostDevice::Factory(
//                                 {.timers = &timers, .irq_sink = &sink})});
//
// Semantics: those of hw::VirtualClock timers, which meet the DeviceTimers
// contract (a past deadline fires at the next Step, never inside ArmAt).
// Lifetime: `clock` is not owned and outlives this and every timer made.
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_CLOCK_DEVICE_TIMERS_H_
#define VIOMMU_SYSTEM_CLOCK_DEVICE_TIMERS_H_

#include <cstdint>
#include <memory>

#include "viommu/hw/core/virtual_clock.h"
#include "viommu/vfio/host/model/device_timers.h"

namespace viommu::system {

class ClockDeviceTimers final : public vfio::model::DeviceTimers {
 public:
  explicit ClockDeviceTimers(hw::VirtualClock* clock) : clock_(clock) {}
  int64_t NowNs() const override { return clock_->now_ns(); }
  std::unique_ptr<vfio::model::DeviceTimer> CreateTimer(
      absl::AnyInvocable<void()> callback) override;

 private:
  hw::VirtualClock* const clock_;  // not owned
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_CLOCK_DEVICE_TIMERS_H_
