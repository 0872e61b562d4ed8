// The C API's context: versioned structs, ABI version, the threading
// contract's checks (-EDEADLK from a callback, -EBUSY on overlap),
// transactions.
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "tests/capi/capi_fixture.h"
#include "viommu.h"

namespace viommu::capi::testing {
namespace {

using CapiContextTest = CapiTest;

TEST(CapiAbiTest, VersionIsTheHeaders) {
  EXPECT_EQ(viommu_abi_version(), uint32_t{VIOMMU_ABI_VERSION});
  EXPECT_EQ(viommu_abi_version() >> 16, uint32_t{VIOMMU_ABI_MAJOR});
}

TEST(CapiCtxNewTest, RejectsNullConfigAndOut) {
  viommu_ctx* ctx = reinterpret_cast<viommu_ctx*>(1);
  EXPECT_EQ(viommu_ctx_new(nullptr, nullptr, nullptr, &ctx), -EINVAL);
  EXPECT_EQ(ctx, nullptr);
  viommu_config cfg{sizeof(cfg), 0};
  EXPECT_EQ(viommu_ctx_new(&cfg, nullptr, nullptr, nullptr), -EINVAL);
}

TEST(CapiCtxNewTest, RejectsASizeBelowTheFirstVersion) {
  viommu_config cfg{sizeof(size_t), 0};
  viommu_ctx* ctx = nullptr;
  EXPECT_EQ(viommu_ctx_new(&cfg, nullptr, nullptr, &ctx), -EINVAL);
}

TEST(CapiCtxNewTest, AcceptsANewerStructWhoseUnknownTailIsZero) {
  struct {
    viommu_config cfg;
    uint64_t future_field;
  } newer{};
  newer.cfg.size = sizeof(newer);
  viommu_ctx* ctx = nullptr;
  ASSERT_EQ(viommu_ctx_new(&newer.cfg, nullptr, nullptr, &ctx), 0);
  viommu_ctx_free(ctx);
  newer.future_field = 1;
  EXPECT_EQ(viommu_ctx_new(&newer.cfg, nullptr, nullptr, &ctx), -E2BIG);
}

TEST(CapiCtxNewTest, RejectsUnknownFlags) {
  viommu_config cfg{sizeof(cfg), 1};
  viommu_ctx* ctx = nullptr;
  EXPECT_EQ(viommu_ctx_new(&cfg, nullptr, nullptr, &ctx), -EINVAL);
}

TEST(CapiCtxNewTest, FreeOfNullIsANoOp) { viommu_ctx_free(nullptr); }

// An MMIO region whose read callback tries a control call.
struct Reentrant {
  viommu_ctx* ctx = nullptr;
  int inner = 0;
  static int Read(void* opaque, uint64_t, uint64_t* data, uint32_t) {
    auto* self = static_cast<Reentrant*>(opaque);
    self->inner = viommu_transaction_begin(self->ctx);
    *data = 7;
    return 0;
  }
  static int Write(void*, uint64_t, uint64_t, uint32_t) { return 0; }
};

TEST_F(CapiContextTest, ControlCallFromACallbackIsEdeadlk) {
  Reentrant re{ctx_};
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_MMIO;
  r.gpa = 0x2000'0000;
  r.len = 0x1000;
  r.read = &Reentrant::Read;
  r.write = &Reentrant::Write;
  r.opaque = &re;
  uint32_t id = 0;
  ASSERT_EQ(viommu_region_add(ctx_, &r, &id), 0);
  uint64_t v = 0;
  ASSERT_EQ(viommu_mmio_access(ctx_, 0x2000'0000, &v, 4, 0), 0);
  EXPECT_EQ(v, 7u);
  EXPECT_EQ(re.inner, -EDEADLK);
  EXPECT_TRUE(rec_.LogContains("called from a callback"));
  // The context is usable afterwards (nothing was left entered).
  EXPECT_EQ(viommu_transaction_begin(ctx_), 0);
  EXPECT_EQ(viommu_transaction_commit(ctx_), 0);
}

// A DMA listener whose map callback blocks until released, so that a
// control call stays in progress on one thread.
struct Blocker {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool release = false;
  static void Map(void* opaque, const viommu_dma_map*) {
    auto* self = static_cast<Blocker*>(opaque);
    std::unique_lock<std::mutex> lock(self->mu);
    self->entered = true;
    self->cv.notify_all();
    self->cv.wait(lock, [&] { return self->release; });
  }
  static void Unmap(void*, uint64_t, uint64_t) {}
};

TEST_F(CapiContextTest, OverlappingControlCallsAreEbusy) {
  AddRam();
  viommu_ep* ep = nullptr;
  ASSERT_EQ(viommu_ep_new(ctx_, 0, 0, 0x20, nullptr, &ep), 0);
  Blocker b;
  viommu_dma_listener l{sizeof(l), &Blocker::Map, &Blocker::Unmap, &b};
  int add_result = 1;
  uint32_t lid = 0;
  std::thread t([&] { add_result = viommu_dma_listener_add(ep, &l, &lid); });
  {
    std::unique_lock<std::mutex> lock(b.mu);
    b.cv.wait(lock, [&] { return b.entered; });
  }
  EXPECT_EQ(viommu_transaction_begin(ctx_), -EBUSY);
  EXPECT_TRUE(rec_.LogContains("another control call"));
  {
    std::lock_guard<std::mutex> lock(b.mu);
    b.release = true;
  }
  b.cv.notify_all();
  t.join();
  EXPECT_EQ(add_result, 0);
  EXPECT_EQ(viommu_transaction_begin(ctx_), 0);
  EXPECT_EQ(viommu_transaction_commit(ctx_), 0);
}

TEST_F(CapiContextTest, CommitWithoutBeginIsEinval) {
  EXPECT_EQ(viommu_transaction_commit(ctx_), -EINVAL);
  EXPECT_TRUE(rec_.LogContains("no open transaction"));
}

TEST_F(CapiContextTest, FreeCommitsAnOpenTransaction) {
  ASSERT_EQ(viommu_transaction_begin(ctx_), 0);
  AddRam();
  // The fixture frees the context with the transaction open: no abort, no
  // leak (ASan tree).
}

}  // namespace
}  // namespace viommu::capi::testing
