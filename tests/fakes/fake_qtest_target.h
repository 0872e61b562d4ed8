// tests/fakes/fake_qtest_target.h — a QtestTarget over a paged byte map, a
// port map and a VirtualClock-like counter clock, recording what a qtest
// session did.
//
//   testing::FakeQtestTarget target;
//   QtestSession session(&target, emit);
//   target.deadline = 500;            // clock_step (no NS) goes there
//   target.RaiseIrq(3, true);         // after irq_intercept_in ioapic
//
// Devices: "ioapic" (and "/machine/ioapic") accepts irq_intercept_in,
// irq_intercept_out and set_irq_in on "unnamed-gpio-in"; "/machine/
// peripheral/dev0" accepts irq_intercept_out only (InterceptIrqIn on it
// fails with `intercept_in_error`). Memory pages beyond kMaxPages are not
// stored (reads 0) so hostile sizes stay cheap; counters see every byte.
#ifndef VIOMMU_TESTS_FAKES_FAKE_QTEST_TARGET_H_
#define VIOMMU_TESTS_FAKES_FAKE_QTEST_TARGET_H_

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "viommu/system/qtest/qtest_target.h"

namespace viommu::system::testing {

class FakeQtestTarget final : public QtestTarget {
 public:
  static constexpr size_t kPage = 4096;
  static constexpr size_t kMaxPages = 4096;  // 16 MiB stored at most

  void MemRead(uint64_t addr, void* buf, size_t len) override {
    auto* p = static_cast<uint8_t*>(buf);
    for (size_t i = 0; i < len;) {
      const uint64_t a = addr + i;
      const size_t off = a % kPage;
      const size_t n = std::min(len - i, kPage - off);
      auto it = pages_.find(a / kPage);
      if (it == pages_.end()) {
        std::memset(p + i, 0, n);
      } else {
        std::memcpy(p + i, it->second.data() + off, n);
      }
      i += n;
    }
    bytes_read += len;
    ++mem_reads;
  }
  void MemWrite(uint64_t addr, const void* buf, size_t len) override {
    const auto* p = static_cast<const uint8_t*>(buf);
    for (size_t i = 0; i < len;) {
      const uint64_t a = addr + i;
      const size_t off = a % kPage;
      const size_t n = std::min(len - i, kPage - off);
      auto it = pages_.find(a / kPage);
      if (it == pages_.end() && pages_.size() < kMaxPages) {
        it = pages_.emplace(a / kPage, Page{}).first;
      }
      if (it != pages_.end()) std::memcpy(it->second.data() + off, p + i, n);
      i += n;
    }
    bytes_written += len;
    ++mem_writes;
    max_write_len = std::max(max_write_len, len);
  }
  uint32_t PortIn(uint16_t port, unsigned size) override {
    last_port_size = size;
    auto it = ports.find(port);
    return it == ports.end() ? 0xffffffffu : it->second;
  }
  void PortOut(uint16_t port, uint32_t value, unsigned size) override {
    last_port_size = size;
    ports[port] = value;
  }

  // VirtualClock's semantics: never backwards, deadline-driven stepping.
  int64_t ClockStep(int64_t ns) override {
    ++clock_calls;
    now += std::max<int64_t>(ns, 0);
    return now;
  }
  std::optional<int64_t> ClockStepNext() override {
    ++clock_calls;
    if (!deadline) return std::nullopt;
    now = std::max(now, *deadline);
    deadline.reset();
    return now;
  }
  int64_t ClockSet(int64_t ns) override {
    ++clock_calls;
    return now = std::max(now, ns);
  }
  std::optional<int64_t> ClockNow() override {
    if (hide_clock_now) return std::nullopt;
    return now;
  }

  [[nodiscard]] absl::Status InterceptIrqIn(
      absl::string_view path, std::function<void(int, bool)> fn) override {
    if (IsIoapic(path)) {
      irq = std::move(fn);
      return absl::OkStatus();
    }
    if (path == "/machine/peripheral/dev0") return intercept_in_error;
    return absl::NotFoundError("no such device");
  }
  [[nodiscard]] absl::Status InterceptIrqOut(absl::string_view path) override {
    return IsIoapic(path) || path == "/machine/peripheral/dev0"
               ? absl::OkStatus()
               : absl::NotFoundError("no such device");
  }
  [[nodiscard]] absl::Status SetIrqIn(absl::string_view path,
                                      absl::string_view name, uint64_t n,
                                      int64_t level) override {
    if (!IsIoapic(path)) return absl::NotFoundError("Unknown device");
    if (name != "unnamed-gpio-in" || n >= 24) {
      return absl::NotFoundError("Unknown IRQ");
    }
    set_irq_calls.emplace_back(n, level);
    RaiseIrq(static_cast<int>(n), level != 0);
    return absl::OkStatus();
  }

  // Drives an intercepted input, as a device would.
  void RaiseIrq(int n, bool level) {
    if (irq) irq(n, level);
  }
  uint8_t Byte(uint64_t addr) {
    uint8_t b = 0;
    MemRead(addr, &b, 1);
    return b;
  }

  std::map<uint16_t, uint32_t> ports;
  unsigned last_port_size = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t mem_reads = 0;
  uint64_t mem_writes = 0;
  size_t max_write_len = 0;
  int64_t now = 0;
  int clock_calls = 0;
  bool hide_clock_now = false;
  std::optional<int64_t> deadline;
  std::function<void(int, bool)> irq;
  absl::Status intercept_in_error = absl::FailedPreconditionError("no gpios");
  std::vector<std::pair<uint64_t, int64_t>> set_irq_calls;

 private:
  using Page = std::array<uint8_t, kPage>;
  static bool IsIoapic(absl::string_view path) {
    return path == "ioapic" || path == "/machine/ioapic";
  }
  std::unordered_map<uint64_t, Page> pages_;
};

}  // namespace viommu::system::testing

#endif  // VIOMMU_TESTS_FAKES_FAKE_QTEST_TARGET_H_
