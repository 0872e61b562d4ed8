// qtest throughput of build/viommu against Debian's qemu-system-x86_64 on
// the same command stream, in one run (issue: viommu >= 3x QEMU).
//
// Each iteration sends a batch of alternating `writeq` / `readl` commands to
// a running machine over its stdio qtest channel and reads every answer;
// items_per_second is commands per second. QEMU is started as
// ARCHITECTURE.md §7 says; when it is not installed its benchmark is
// skipped with a message.
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "tests/qtest/qtest_client.h"

namespace viommu::qtest {
namespace {

constexpr int kBatch = 1000;

std::string HaltBios() {
  std::string path = absl::StrFormat("/tmp/viommu-bench-hlt-%d.bin", getpid());
  std::ofstream(path, std::ios::binary) << std::string(65536, '\xf4');
  return path;
}

void RunThroughput(benchmark::State& state, const std::string& binary) {
  if (access(binary.c_str(), X_OK) != 0) {
    state.SkipWithError((binary + " is not installed").c_str());
    return;
  }
  const std::string bios = HaltBios();
  auto qts =
      QtestClient::Spawn({binary, "-machine", "q35", "-accel", "tcg", "-qtest",
                          "stdio", "-qtest-log", "/dev/null", "-display",
                          "none", "-nodefaults", "-bios", bios, "-m", "256M"});
  if (!qts.ok()) {
    state.SkipWithError(std::string(qts.status().message()).c_str());
    return;
  }
  std::string batch;
  for (int i = 0; i < kBatch / 2; ++i) {
    batch += absl::StrFormat("writeq 0x%x 0x%x\nreadl 0x%x\n", 0x1000 + 8 * i,
                             i, 0x1000 + 8 * i);
  }
  // The first answer proves the machine is up before timing starts.
  if (!(*qts)->Command("endianness").ok()) {
    state.SkipWithError("machine did not answer");
    return;
  }
  for (auto _ : state) {
    if (!(*qts)->SendBatch(batch, kBatch).ok()) {
      state.SkipWithError("machine stopped answering");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  unlink(bios.c_str());
}

void BM_QtestThroughputViommu(benchmark::State& state) {
  RunThroughput(state, VIOMMU_BINARY);
}
BENCHMARK(BM_QtestThroughputViommu)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_QtestThroughputQemu(benchmark::State& state) {
  RunThroughput(state, "/usr/bin/qemu-system-x86_64");
}
BENCHMARK(BM_QtestThroughputQemu)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace viommu::qtest

BENCHMARK_MAIN();
