#include "viommu/hw/core/virtual_clock.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::hw {
namespace {

using ::testing::ElementsAre;

TEST(VirtualClockTest, StartsAtZeroWithNoDeadline) {
  VirtualClock clock;
  EXPECT_EQ(clock.now_ns(), 0);
  EXPECT_EQ(clock.NextDeadline(), std::nullopt);
}

TEST(VirtualClockTest, StepRunsDueTimersInDeadlineOrder) {
  VirtualClock clock;
  std::vector<std::string> log;
  Timer late(&clock,
             [&] { log.push_back("late@" + std::to_string(clock.now_ns())); });
  Timer early(&clock, [&] {
    log.push_back("early@" + std::to_string(clock.now_ns()));
  });
  late.ArmAt(300);
  early.ArmAt(100);
  EXPECT_EQ(clock.Step(1000), 1000);
  EXPECT_THAT(log, ElementsAre("early@100", "late@300"));
  EXPECT_FALSE(early.armed());
  EXPECT_FALSE(late.armed());
}

TEST(VirtualClockTest, EqualDeadlinesRunInArmingOrder) {
  VirtualClock clock;
  std::vector<int> log;
  Timer a(&clock, [&] { log.push_back(1); });
  Timer b(&clock, [&] { log.push_back(2); });
  Timer c(&clock, [&] { log.push_back(3); });
  b.ArmAt(50);
  c.ArmAt(50);
  a.ArmAt(50);
  clock.Step(50);
  EXPECT_THAT(log, ElementsAre(2, 3, 1));
}

TEST(VirtualClockTest, TimersAfterTargetDoNotRun) {
  VirtualClock clock;
  int runs = 0;
  Timer t(&clock, [&] { ++runs; });
  t.ArmAt(200);
  clock.Step(199);
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(t.armed());
  clock.Step(1);
  EXPECT_EQ(runs, 1);
}

TEST(VirtualClockTest, CallbackRearmForPeriodicTimer) {
  VirtualClock clock;
  std::vector<int64_t> fired;
  Timer* self = nullptr;
  Timer t(&clock, [&] {
    fired.push_back(clock.now_ns());
    self->ArmAt(clock.now_ns() + 100);
  });
  self = &t;
  t.ArmAt(100);
  clock.Step(350);
  EXPECT_THAT(fired, ElementsAre(100, 200, 300));
  EXPECT_EQ(t.deadline_ns(), 400);
  EXPECT_EQ(clock.now_ns(), 350);
}

TEST(VirtualClockTest, RearmMovesDeadline) {
  VirtualClock clock;
  int runs = 0;
  Timer t(&clock, [&] { ++runs; });
  t.ArmAt(100);
  t.ArmAt(500);
  clock.Step(400);
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(clock.NextDeadline(), 500);
  clock.Step(100);
  EXPECT_EQ(runs, 1);
}

TEST(VirtualClockTest, CallbackMayCancelLaterTimer) {
  VirtualClock clock;
  int second_runs = 0;
  Timer second(&clock, [&] { ++second_runs; });
  Timer first(&clock, [&] { second.Cancel(); });
  first.ArmAt(10);
  second.ArmAt(20);
  clock.Step(100);
  EXPECT_EQ(second_runs, 0);
}

TEST(VirtualClockTest, CancelPreventsCallback) {
  VirtualClock clock;
  int runs = 0;
  Timer t(&clock, [&] { ++runs; });
  t.ArmAt(10);
  t.Cancel();
  EXPECT_FALSE(t.armed());
  EXPECT_EQ(clock.NextDeadline(), std::nullopt);
  clock.Step(100);
  EXPECT_EQ(runs, 0);
}

TEST(VirtualClockTest, DestroyedTimerIsDisarmed) {
  VirtualClock clock;
  {
    Timer t(&clock, [] { FAIL() << "destroyed timer ran"; });
    t.ArmAt(10);
  }
  EXPECT_EQ(clock.NextDeadline(), std::nullopt);
  clock.Step(100);
}

TEST(VirtualClockTest, StepToNextDeadlineAdvancesExactly) {
  VirtualClock clock;
  int64_t seen = -1;
  Timer t(&clock, [&] { seen = clock.now_ns(); });
  Timer later(&clock, [] {});
  t.ArmAt(1234);
  later.ArmAt(5000);
  EXPECT_EQ(clock.StepToNextDeadline(), 1234);
  EXPECT_EQ(seen, 1234);
  EXPECT_EQ(clock.now_ns(), 1234);
  EXPECT_TRUE(later.armed());
}

TEST(VirtualClockTest, StepToNextDeadlineWithoutTimersFails) {
  VirtualClock clock;
  clock.Step(10);
  EXPECT_EQ(clock.StepToNextDeadline(), std::nullopt);
  EXPECT_EQ(clock.now_ns(), 10);
}

TEST(VirtualClockTest, AdvanceToPastKeepsTime) {
  VirtualClock clock;
  clock.AdvanceTo(1000);
  EXPECT_EQ(clock.AdvanceTo(500), 1000);
  EXPECT_EQ(clock.now_ns(), 1000);
}

TEST(VirtualClockTest, PastDeadlineFiresOnStepZero) {
  VirtualClock clock;
  clock.Step(1000);
  int64_t seen = -1;
  Timer t(&clock, [&] { seen = clock.now_ns(); });
  t.ArmAt(10);
  clock.Step(0);
  EXPECT_EQ(seen, 1000);  // time never goes back
}

TEST(VirtualClockTest, TimerArmedByCallbackWithinTargetRuns) {
  VirtualClock clock;
  std::vector<int64_t> log;
  Timer second(&clock, [&] { log.push_back(clock.now_ns()); });
  Timer first(&clock, [&] {
    log.push_back(clock.now_ns());
    second.ArmAt(clock.now_ns() + 50);
  });
  first.ArmAt(100);
  clock.Step(200);
  EXPECT_THAT(log, ElementsAre(100, 150));
}

TEST(VirtualClockTest, RewindStartsOverAsANewClock) {
  VirtualClock clock;
  int fired = 0;
  Timer t(&clock, [&] { ++fired; });
  t.ArmAt(100);
  clock.Step(1000);
  clock.Rewind();
  EXPECT_EQ(clock.now_ns(), 0);
  t.ArmAt(100);  // a deadline that had passed before the rewind
  clock.Step(99);
  EXPECT_EQ(fired, 1);
  clock.Step(1);
  EXPECT_EQ(fired, 2);
}

TEST(VirtualClockDeathTest, RewindWithATimerArmedIsABug) {
  VirtualClock clock;
  Timer t(&clock, [] {});
  t.ArmAt(100);
  EXPECT_DEATH(clock.Rewind(), "armed_.empty");
}

}  // namespace
}  // namespace viommu::hw
