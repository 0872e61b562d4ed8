// viommu/system/qtest/qtest_target.h — what a qtest session drives: CPU
// accesses to memory and I/O ports, the virtual clock, and IRQ interception
// (implemented by system::Vm, and by fakes in tests).
//
//   class MyVm final : public QtestTarget { ... };
//   QtestSession session(&my_vm, emit);    // see qtest_session.h
//
// Asynchronous IRQ lines: InterceptIrqIn hands the target a callback; the
// target calls it with (line, level) whenever an intercepted input changes
// (during a command or at any other time, on the control context), and the
// session turns that into `IRQ raise N` / `IRQ lower N`.
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_TARGET_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_TARGET_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace viommu::system {

class QtestTarget {
 public:
  QtestTarget() = default;
  QtestTarget(const QtestTarget&) = delete;
  QtestTarget& operator=(const QtestTarget&) = delete;
  virtual ~QtestTarget() = default;

  // System memory as the CPU sees it (unassigned reads 0, writes vanish).
  virtual void MemRead(uint64_t addr, void* buf, size_t len) = 0;
  virtual void MemWrite(uint64_t addr, const void* buf, size_t len) = 0;
  // I/O ports; size 1, 2 or 4.
  virtual uint32_t PortIn(uint16_t port, unsigned size) = 0;
  virtual void PortOut(uint16_t port, uint32_t value, unsigned size) = 0;

  // The virtual clock in ns: step by ns, to the next timer deadline
  // (nullopt: none armed), or to an absolute time (never backwards).
  virtual int64_t ClockStep(int64_t ns) = 0;
  virtual std::optional<int64_t> ClockStepNext() = 0;
  virtual int64_t ClockSet(int64_t ns) = 0;
  // Optional: the current virtual time. The default (nullopt) makes the
  // session use the latest time any clock command returned, which is exact
  // as long as only qtest moves the clock.
  virtual std::optional<int64_t> ClockNow() { return std::nullopt; }

  // Optional: whether `qom_path` names a device, without side effects
  // (irq_intercept_* answers "FAIL Unknown device" before its other checks,
  // as QEMU). The default asks InterceptIrqOut, which must then have no
  // side effect beyond its answer; override otherwise.
  virtual bool HasDevice(absl::string_view qom_path) {
    return InterceptIrqOut(qom_path).ok();
  }

  // irq_intercept_in: routes level changes of `qom_path`'s input lines to
  // `fn`. Errors: kNotFound (no such device).
  [[nodiscard]] virtual absl::Status InterceptIrqIn(
      absl::string_view qom_path, std::function<void(int, bool)> fn) = 0;
  // irq_intercept_out: intercepts the output lines of `qom_path` (none of
  // viommu's devices has named outputs yet, so this only checks the path).
  // Errors: kNotFound.
  [[nodiscard]] virtual absl::Status InterceptIrqOut(
      absl::string_view qom_path) = 0;
  // set_irq_in: drives input line `n` of the GPIO array `name` of
  // `qom_path` ("unnamed-gpio-in" is the unnamed one). Errors: kNotFound
  // (device or line).
  [[nodiscard]] virtual absl::Status SetIrqIn(absl::string_view qom_path,
                                              absl::string_view name,
                                              uint64_t n, int64_t level) = 0;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_TARGET_H_
