// The cost of a disabled trace point and of a counted, disabled guest-error
// log call site (docs/tracing.md: "zero cost when disabled"). Compare
// BM_TraceDisabledCheck with BM_NoTracePoint: the difference is the one
// relaxed load and not-taken branch a call site adds.
#include <cstdint>

#include "benchmark/benchmark.h"
#include "viommu/util/log.h"
#include "viommu/util/trace.h"

namespace viommu {
namespace {

void BM_NoTracePoint(benchmark::State& state) {
  uint64_t x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x += 1);
  }
}
BENCHMARK(BM_NoTracePoint);

void BM_TraceDisabledCheck(benchmark::State& state) {
  trace::Trace::DisableAll();
  uint64_t x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x += 1);
    VIOMMU_TRACE(vtd_reg_write, x, 4u, x);
  }
}
BENCHMARK(BM_TraceDisabledCheck);

// Enabled into a sink that drops it: the formatting cost when on.
void BM_TraceEnabledToSink(benchmark::State& state) {
  trace::Trace::Enable("vtd_reg_write");
  log::Log::SetSink([](const log::LogRecord& r) {
    benchmark::DoNotOptimize(r.message.data());
  });
  uint64_t x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x += 1);
    VIOMMU_TRACE(vtd_reg_write, x, 4u, x);
  }
  log::Log::SetSink(nullptr);
  trace::Trace::DisableAll();
}
BENCHMARK(BM_TraceEnabledToSink);

// -d guest_errors off: the site is still counted (one relaxed add).
void BM_GuestErrorDisabled(benchmark::State& state) {
  log::Log::SetMask(0);
  uint64_t x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x += 1);
    VIOMMU_LOG_GUEST_ERROR("bench %d", static_cast<int>(x));
  }
}
BENCHMARK(BM_GuestErrorDisabled);

}  // namespace
}  // namespace viommu

BENCHMARK_MAIN();
