#include "viommu/system/clock_device_timers.h"

#include <utility>

namespace viommu::system {
namespace {

class ClockTimer final : public vfio::model::DeviceTimer {
 public:
  ClockTimer(hw::VirtualClock* clock, absl::AnyInvocable<void()> callback)
      : callback_(
            std::make_shared<absl::AnyInvocable<void()>>(std::move(callback))),
        timer_(clock, [cb = callback_] { (*cb)(); }) {}
  void ArmAt(int64_t deadline_ns) override { timer_.ArmAt(deadline_ns); }
  void Cancel() override { timer_.Cancel(); }
  bool pending() const override { return timer_.armed(); }

 private:
  // hw::Timer takes a copyable callback; the device's is move-only.
  std::shared_ptr<absl::AnyInvocable<void()>> callback_;
  hw::Timer timer_;
};

}  // namespace

std::unique_ptr<vfio::model::DeviceTimer> ClockDeviceTimers::CreateTimer(
    absl::AnyInvocable<void()> callback) {
  return std::make_unique<ClockTimer>(clock_, std::move(callback));
}

}  // namespace viommu::system
