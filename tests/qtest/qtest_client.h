// tests/qtest/qtest_client.h — a libqtest-style client: spawns a machine
// binary (build/viommu or qemu-system-x86_64) with `-qtest stdio`, sends
// protocol lines and reads the answers, and wraps the usual commands.
//
//   auto qts = QtestClient::Spawn({"build/viommu", "-M", "q35", "-qtest",
//                                  "stdio", "-device", "edu,addr=04.0"});
//   uint32_t id = (*qts)->Readl(0xb0000000 + (4 << 15));
//   (*qts)->ClockStep(100'000'000);
//
// Answers are lines; asynchronous `IRQ raise N` / `IRQ lower N` lines that
// arrive before an answer are collected in irq_events(). Every call waits
// at most `timeout` for its answer; a dead or silent machine makes the call
// fail (Command) or record a failure and return all-ones (the typed
// helpers; failed() then reports it).
//
// Threading: one thread.
#ifndef VIOMMU_TESTS_QTEST_QTEST_CLIENT_H_
#define VIOMMU_TESTS_QTEST_QTEST_CLIENT_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace viommu::qtest {

class QtestClient {
 public:
  // Starts argv[0] with argv[1..]; its stdin/stdout become the qtest
  // channel (pass "-qtest", "stdio"). stderr is kept for diagnostics.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<QtestClient>> Spawn(
      std::vector<std::string> argv,
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  QtestClient(const QtestClient&) = delete;
  QtestClient& operator=(const QtestClient&) = delete;
  // Closes the channel, waits briefly for exit (viommu exits on EOF), then
  // kills the process (QEMU does not exit on EOF).
  ~QtestClient();

  // Sends one line and returns the answer line without its newline.
  [[nodiscard]] absl::StatusOr<std::string> Command(absl::string_view line);

  // Sends `lines` (newline-terminated) in one write and reads `answers`
  // answers (asynchronous IRQ lines are collected, not counted).
  [[nodiscard]] absl::Status SendBatch(absl::string_view lines, int answers);

  // Typed helpers (libqtest's qtest_inl, qtest_readl, ...).
  uint8_t Inb(uint16_t port);
  uint16_t Inw(uint16_t port);
  uint32_t Inl(uint16_t port);
  void Outb(uint16_t port, uint8_t v);
  void Outw(uint16_t port, uint16_t v);
  void Outl(uint16_t port, uint32_t v);
  uint8_t Readb(uint64_t addr);
  uint16_t Readw(uint64_t addr);
  uint32_t Readl(uint64_t addr);
  uint64_t Readq(uint64_t addr);
  void Writeb(uint64_t addr, uint8_t v);
  void Writew(uint64_t addr, uint16_t v);
  void Writel(uint64_t addr, uint32_t v);
  void Writeq(uint64_t addr, uint64_t v);
  std::vector<uint8_t> Memread(uint64_t addr, size_t len);
  void Memwrite(uint64_t addr, const std::vector<uint8_t>& data);
  void Memset(uint64_t addr, size_t len, uint8_t v);
  // Returns the new virtual time in ns.
  int64_t ClockStep(int64_t ns);

  const std::vector<std::string>& irq_events() const { return irq_events_; }
  // True once a typed helper got no valid answer; last_error() says why.
  bool failed() const { return !last_error_.empty(); }
  const std::string& last_error() const { return last_error_; }
  pid_t pid() const { return pid_; }

 private:
  QtestClient() = default;
  [[nodiscard]] absl::StatusOr<std::string> ReadLine();
  [[nodiscard]] absl::Status WriteAll(absl::string_view out);
  // "OK 0x..." -> value; records a failure otherwise.
  uint64_t ValueOf(absl::string_view line);
  void ExpectOk(absl::string_view line);

  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::chrono::milliseconds timeout_{0};
  std::string buffer_;
  std::vector<std::string> irq_events_;
  std::string last_error_;
};

}  // namespace viommu::qtest

#endif  // VIOMMU_TESTS_QTEST_QTEST_CLIENT_H_
