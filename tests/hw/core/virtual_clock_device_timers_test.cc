// VirtualClock as devcore::DeviceTimers: the timers a device model (the
// edu engine, a simulated host device) creates on the machine's virtual
// clock meet the DeviceTimers contract.
#include <memory>

#include "gtest/gtest.h"
#include "viommu/hw/core/virtual_clock.h"

namespace viommu::hw {
namespace {

TEST(VirtualClockDeviceTimersTest, FiresWhenTheClockReachesTheDeadline) {
  VirtualClock clock;
  devcore::DeviceTimers& timers = clock;
  int fired = 0;
  int64_t seen = -1;
  auto t = timers.CreateTimer([&] {
    ++fired;
    seen = timers.NowNs();
  });
  t->ArmAt(100'000'000);
  EXPECT_TRUE(t->pending());
  clock.Step(99'999'999);
  EXPECT_EQ(fired, 0);
  clock.Step(1);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(seen, 100'000'000);
  EXPECT_FALSE(t->pending());
}

TEST(VirtualClockDeviceTimersTest, PastDeadlineFiresAtTheNextStepNotInArmAt) {
  VirtualClock clock;
  clock.Step(1000);
  devcore::DeviceTimers& timers = clock;
  int fired = 0;
  auto t = timers.CreateTimer([&] { ++fired; });
  t->ArmAt(10);
  EXPECT_EQ(fired, 0);
  clock.Step(0);
  EXPECT_EQ(fired, 1);
}

TEST(VirtualClockDeviceTimersTest, CancelAndDestroyStopTheCallback) {
  VirtualClock clock;
  devcore::DeviceTimers& timers = clock;
  int fired = 0;
  auto t = timers.CreateTimer([&] { ++fired; });
  t->ArmAt(10);
  t->Cancel();
  clock.Step(20);
  EXPECT_EQ(fired, 0);
  t->ArmAt(30);
  t.reset();
  clock.Step(20);
  EXPECT_EQ(fired, 0);
}

TEST(VirtualClockDeviceTimersTest, CallbackMayRearmItsOwnTimer) {
  VirtualClock clock;
  devcore::DeviceTimers& timers = clock;
  int fired = 0;
  std::unique_ptr<devcore::DeviceTimer> t;
  t = timers.CreateTimer([&] {
    if (++fired < 3) t->ArmAt(timers.NowNs() + 10);
  });
  t->ArmAt(10);
  clock.Step(100);
  EXPECT_EQ(fired, 3);
}

}  // namespace
}  // namespace viommu::hw
