// virtio-iommu MAP+UNMAP request pairs per second through the request
// queue over qtest, build/viommu against Debian's qemu-system-x86_64 on
// the same command stream, in one run (issue 13: viommu >= 5x QEMU 7.2).
//
// The guest driver (as tests/conformance/gen_virtio_iommu.py): virtio-iommu
// at 03.0 (BAR4 0xfe800000), the request queue's rings in RAM, one ATTACH
// of 00:1f.0; each iteration posts kPairs MAP and UNMAP requests, one
// notify write each, and reads the used index at the end (each answer is
// final when its notify write returns). items_per_second is request pairs.
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "tests/qtest/qtest_client.h"

namespace viommu::qtest {
namespace {

constexpr int kPairs = 100;
constexpr uint64_t kBar4 = 0xfe80'0000;
constexpr uint64_t kDesc = 0x10'0000, kAvail = 0x10'1000, kUsed = 0x10'2000;
constexpr uint64_t kOut = 0x20'0000, kIn = 0x30'0000;

std::string HaltBios() {
  std::string path =
      absl::StrFormat("/tmp/viommu-vi-bench-hlt-%d.bin", getpid());
  std::ofstream(path, std::ios::binary) << std::string(65536, '\xf4');
  return path;
}

std::string Hex(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += absl::StrFormat("%02x", p[i]);
  return s;
}

// One request in descriptors (2 * slot, 2 * slot + 1) posted at avail
// index `idx` and kicked: 7 commands.
std::string Request(const std::string& out_hex, size_t out_len, int slot,
                    uint16_t idx) {
  const uint64_t out = kOut + 0x100 * slot, in = kIn + 0x100 * slot;
  const int d = 2 * slot;
  std::string s;
  s += absl::StrFormat("write 0x%x 0x%x 0x%s\n", out, out_len, out_hex);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kDesc + 16 * d, out);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kDesc + 16 * d + 8,
                       out_len | uint64_t{1} << 32 | uint64_t(d + 1) << 48);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kDesc + 16 * (d + 1), in);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kDesc + 16 * (d + 1) + 8,
                       4 | uint64_t{2} << 32);
  s += absl::StrFormat("writew 0x%x 0x%x\n", kAvail + 4 + 2 * (idx % 256), d);
  s += absl::StrFormat("writew 0x%x 0x%x\n", kAvail + 2,
                       static_cast<uint16_t>(idx + 1));
  s += absl::StrFormat("writew 0x%x 0x0\n", kBar4 + 0x3000);
  return s;
}
constexpr int kCommandsPerRequest = 8;

std::string Setup() {
  std::string s;
  auto cfg = [&](uint32_t off, uint32_t v, const char* op) {
    s += absl::StrFormat("outl 0xcf8 0x%x\n%s 0xcfc 0x%x\n",
                         0x80001800u | off, op, v);
  };
  cfg(0x20, kBar4, "outl");
  cfg(0x24, 0, "outl");
  cfg(0x04, 6, "outw");
  for (int st : {0, 1, 3}) {
    s += absl::StrFormat("writeb 0x%x 0x%x\n", kBar4 + 0x14, st);
  }
  s += absl::StrFormat("writel 0x%x 0x0\nwritel 0x%x 0x77\n", kBar4 + 8,
                       kBar4 + 0xc);
  s += absl::StrFormat("writel 0x%x 0x1\nwritel 0x%x 0x1\n", kBar4 + 8,
                       kBar4 + 0xc);
  s += absl::StrFormat("writeb 0x%x 0xb\n", kBar4 + 0x14);
  s += absl::StrFormat("writew 0x%x 0x0\n", kBar4 + 0x16);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kBar4 + 0x20, kDesc);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kBar4 + 0x28, kAvail);
  s += absl::StrFormat("writeq 0x%x 0x%x\n", kBar4 + 0x30, kUsed);
  s += absl::StrFormat("writew 0x%x 0x1\n", kBar4 + 0x1c);
  s += absl::StrFormat("writeb 0x%x 0xf\n", kBar4 + 0x14);
  return s;
}

void RunMapUnmap(benchmark::State& state, const std::string& binary) {
  if (access(binary.c_str(), X_OK) != 0) {
    state.SkipWithError((binary + " is not installed").c_str());
    return;
  }
  const std::string bios = HaltBios();
  auto qts = QtestClient::Spawn(
      {binary, "-machine", "q35", "-accel", "tcg", "-qtest", "stdio",
       "-qtest-log", "/dev/null", "-display", "none", "-nodefaults", "-bios",
       bios, "-m", "256M", "-device", "virtio-iommu-pci,addr=0x3"});
  if (!qts.ok()) {
    state.SkipWithError(std::string(qts.status().message()).c_str());
    return;
  }
  const std::string setup = Setup();
  int setup_lines = 0;
  for (char c : setup) setup_lines += c == '\n';
  if (!(*qts)->SendBatch(setup, setup_lines).ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  uint16_t idx = 0;
  // ATTACH 00:1f.0 to domain 1.
  const uint8_t attach[20] = {1, 0, 0, 0, 1, 0, 0, 0, 0xf8};
  if (!(*qts)->SendBatch(Request(Hex(attach, 20), 20, 0, idx++),
                         kCommandsPerRequest)
           .ok()) {
    state.SkipWithError("attach failed");
    return;
  }
  for (auto _ : state) {
    std::string batch;
    for (int i = 0; i < kPairs; ++i) {
      const uint64_t iova = 0x100000 + 0x1000 * i;
      uint8_t map[36] = {3, 0, 0, 0, 1};
      uint8_t unmap[28] = {4, 0, 0, 0, 1};
      for (int b = 0; b < 8; ++b) {
        map[8 + b] = unmap[8 + b] = static_cast<uint8_t>(iova >> 8 * b);
        map[16 + b] = unmap[16 + b] =
            static_cast<uint8_t>((iova + 0xfff) >> 8 * b);
        map[24 + b] = static_cast<uint8_t>((0x800000 + 0x1000 * i) >> 8 * b);
      }
      map[32] = 3;
      batch += Request(Hex(map, 36), 36, 1 + i % 60, idx++);
      batch += Request(Hex(unmap, 28), 28, 61 + i % 60, idx++);
    }
    batch += absl::StrFormat("readw 0x%x\n", kUsed + 2);
    if (!(*qts)->SendBatch(batch, 2 * kPairs * kCommandsPerRequest + 1).ok()) {
      state.SkipWithError("machine stopped answering");
      break;
    }
  }
  const uint16_t used = (*qts)->Readw(kUsed + 2);
  if (used != idx) state.SkipWithError("requests were not all answered");
  state.SetItemsProcessed(state.iterations() * kPairs);
  unlink(bios.c_str());
}

void BM_VirtioIommuQtestVsQemu(benchmark::State& state) {
  RunMapUnmap(state, state.range(0) == 0 ? VIOMMU_BINARY
                                         : "/usr/bin/qemu-system-x86_64");
  state.SetLabel(state.range(0) == 0 ? "viommu" : "qemu-7.2");
}
BENCHMARK(BM_VirtioIommuQtestVsQemu)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace viommu::qtest

BENCHMARK_MAIN();
