#include "viommu/util/published_ptr.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "viommu/util/hazard_pointer.h"

namespace viommu {
namespace {

// Counts live instances; a dead one has its canary cleared.
struct Tracked {
  Tracked(int v, std::atomic<int>* counter) : value(v), live(counter) {
    live->fetch_add(1);
  }
  ~Tracked() {
    canary = 0;
    live->fetch_sub(1);
  }
  int value;
  int canary = 0x5eed;
  std::atomic<int>* live;
};

using Slot = PublishedPtr<const Tracked>;

TEST(PublishedPtrTest, PinSeesThePublishedObject) {
  std::atomic<int> live{0};
  Slot slot(std::make_shared<const Tracked>(1, &live));
  Slot::Pin pin(slot);
  EXPECT_EQ(pin->value, 1);
  slot.Exchange(std::make_shared<const Tracked>(2, &live));
  EXPECT_EQ(pin->value, 1);  // the pin keeps the old one
  pin.Reset(slot);
  EXPECT_EQ(pin->value, 2);
}

TEST(PublishedPtrTest, UnpinnedObjectIsReturnedByExchange) {
  std::atomic<int> live{0};
  Slot slot(std::make_shared<const Tracked>(1, &live));
  std::shared_ptr<const Tracked> old =
      slot.Exchange(std::make_shared<const Tracked>(2, &live));
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->value, 1);
  old.reset();
  EXPECT_EQ(live.load(), 1);
}

TEST(PublishedPtrTest, PinnedObjectDiesWithItsLastPin) {
  std::atomic<int> live{0};
  Slot slot(std::make_shared<const Tracked>(1, &live));
  {
    Slot::Pin outer(slot);
    {
      Slot::Pin inner(slot);  // nested: the next slot of this thread
      EXPECT_EQ(slot.Exchange(std::make_shared<const Tracked>(2, &live)),
                nullptr);  // retired, not returned
      EXPECT_EQ(live.load(), 2);
      EXPECT_EQ(inner->canary, 0x5eed);
    }
    EXPECT_EQ(live.load(), 2);  // `outer` still protects it
    EXPECT_EQ(outer->value, 1);
  }
  EXPECT_EQ(live.load(), 1);
  EXPECT_EQ(hazard::RetiredCountForTesting(), 0u);
}

TEST(PublishedPtrTest, PinOnAnotherThreadKeepsTheObjectUntilReleased) {
  std::atomic<int> live{0};
  Slot slot(std::make_shared<const Tracked>(1, &live));
  std::atomic<int> step{0};
  std::thread reader([&] {
    Slot::Pin pin(slot);
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
    EXPECT_EQ(pin->canary, 0x5eed);
    EXPECT_EQ(pin->value, 1);
  });
  while (step.load() != 1) std::this_thread::yield();
  EXPECT_EQ(slot.Exchange(std::make_shared<const Tracked>(2, &live)), nullptr);
  EXPECT_EQ(live.load(), 2);
  step = 2;
  reader.join();  // its pin's release dropped the old object
  EXPECT_EQ(live.load(), 1);
  EXPECT_EQ(hazard::RetiredCountForTesting(), 0u);
}

TEST(PublishedPtrTest, PinsDeeperThanTheSlotsHoldCopies) {
  std::atomic<int> live{0};
  Slot slot(std::make_shared<const Tracked>(1, &live));
  std::vector<std::unique_ptr<Slot::Pin>> pins;
  for (int i = 0; i < hazard::kSlotsPerThread + 3; ++i) {
    pins.push_back(std::make_unique<Slot::Pin>(slot));
  }
  slot.Exchange(std::make_shared<const Tracked>(2, &live));
  for (const auto& p : pins) EXPECT_EQ((*p)->value, 1);
  while (!pins.empty()) pins.pop_back();  // reverse order of creation
  EXPECT_EQ(live.load(), 1);
}

TEST(PublishedPtrTest, ExitingThreadReturnsItsRecordForReuse) {
  std::atomic<int> live{0};
  Slot slot(std::make_shared<const Tracked>(1, &live));
  const void* first = nullptr;
  std::thread([&] {
    Slot::Pin pin(slot);
    first = hazard::ThisThread();
  }).join();
  const void* second = nullptr;
  std::thread([&] {
    Slot::Pin pin(slot);
    second = hazard::ThisThread();
  }).join();
  EXPECT_EQ(first, second);
}

// Readers pin and check the object while a writer replaces it as fast as
// it can: no reader ever sees a dead object (the canary, and ASan/TSan in
// the sanitizer trees), and nothing is left alive or retired at the end.
TEST(PublishedPtrStressTest, ReadersNeverSeeADeadObject) {
  std::atomic<int> live{0};
  auto slot = std::make_unique<Slot>(std::make_shared<const Tracked>(0, &live));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::atomic<int> started{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      started.fetch_add(1);
      int last = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        Slot::Pin pin(*slot);
        if (pin->canary != 0x5eed || pin->value < last) bad.fetch_add(1);
        last = pin->value;
        Slot::Pin nested(*slot);  // a second slot of the same thread
        if (nested->canary != 0x5eed) bad.fetch_add(1);
      }
    });
  }
  while (started.load() != 3) std::this_thread::yield();
  for (int i = 1; i <= 100000; ++i) {
    slot->Exchange(std::make_shared<const Tracked>(i, &live));
  }
  stop = true;
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(live.load(), 1);
  EXPECT_EQ(hazard::RetiredCountForTesting(), 0u);
}

}  // namespace
}  // namespace viommu
