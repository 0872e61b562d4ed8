// tests/fakes/fake_qtest_target.h — a QtestTarget over a byte map, a port
// map and a counter clock, recording what a qtest session did.
#ifndef VIOMMU_TESTS_FAKES_FAKE_QTEST_TARGET_H_
#define VIOMMU_TESTS_FAKES_FAKE_QTEST_TARGET_H_

#include <map>
#include <optional>
#include <string>

#include "viommu/system/qtest/qtest_target.h"

namespace viommu::system::testing {

class FakeQtestTarget final : public QtestTarget {
 public:
  void MemRead(uint64_t addr, void* buf, size_t len) override {
    auto* p = static_cast<uint8_t*>(buf);
    for (size_t i = 0; i < len; ++i) {
      auto it = mem.find(addr + i);
      p[i] = it == mem.end() ? 0 : it->second;
    }
    bytes_read += len;
  }
  void MemWrite(uint64_t addr, const void* buf, size_t len) override {
    const auto* p = static_cast<const uint8_t*>(buf);
    for (size_t i = 0; i < len && i < kMaxTracked; ++i) mem[addr + i] = p[i];
    bytes_written += len;
  }
  uint32_t PortIn(uint16_t port, unsigned size) override {
    last_port_size = size;
    auto it = ports.find(port);
    return it == ports.end() ? 0xffffffffu >> (32 - 8 * size) : it->second;
  }
  void PortOut(uint16_t port, uint32_t value, unsigned size) override {
    last_port_size = size;
    ports[port] = value;
  }
  int64_t ClockStep(int64_t ns) override { return now += ns; }
  std::optional<int64_t> ClockStepNext() override {
    if (!deadline) return std::nullopt;
    now = *deadline;
    deadline.reset();
    return now;
  }
  int64_t ClockSet(int64_t ns) override { return now = std::max(now, ns); }
  absl::Status InterceptIrqIn(absl::string_view path,
                              std::function<void(int, bool)> fn) override {
    if (path != "ioapic") return absl::NotFoundError("no such device");
    irq = std::move(fn);
    return absl::OkStatus();
  }
  absl::Status InterceptIrqOut(absl::string_view path) override {
    return path == "ioapic" ? absl::OkStatus()
                            : absl::NotFoundError("no such device");
  }
  absl::Status SetIrqIn(absl::string_view path, absl::string_view name,
                        uint64_t n, int64_t level) override {
    if (path != "ioapic" || name != "unnamed-gpio-in") {
      return absl::NotFoundError("Unknown device");
    }
    if (irq) irq(static_cast<int>(n), level != 0);
    return absl::OkStatus();
  }

  static constexpr size_t kMaxTracked = 1 << 20;
  std::map<uint64_t, uint8_t> mem;
  std::map<uint16_t, uint32_t> ports;
  unsigned last_port_size = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  int64_t now = 0;
  std::optional<int64_t> deadline;
  std::function<void(int, bool)> irq;
};

}  // namespace viommu::system::testing

#endif  // VIOMMU_TESTS_FAKES_FAKE_QTEST_TARGET_H_
