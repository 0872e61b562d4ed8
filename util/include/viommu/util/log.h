// viommu/util/log.h — QEMU-style log categories (-d), counted and
// rate-limited, and the one output every trace event and log line goes to.
//
//   VIOMMU_LOG_GUEST_ERROR("vtd: write to read-only register 0x%x", addr);
//   VIOMMU_LOG_UNIMP("vtd: queued invalidation type %u", type);
//   Log::SetMask(kLogGuestErrors);                  // -d guest_errors
//   absl::Status s = Log::SetFile("/tmp/v.log");   // -D /tmp/v.log
//   Log::SetSink([](const LogRecord& r) { ... });   // embedding application
//
// Every VIOMMU_LOG_* is counted (Log::Count) whether or not its category is
// enabled (STYLE.md rule 11). When enabled, each call site prints at most
// Log::kBurst lines per Log::kWindowNs of the log clock; the first line
// after a window that suppressed some says how many ("suppressed N").
// Arguments are formatted only for lines that are printed.
//
// Output: each record goes to the sink if one is set; and to the -D file
// if one is open, else to stderr unless a sink is set. Trace events
// (trace.h) take the same path with kind "trace".
//
// Thread safety: every function may be called from any thread; records
// reach the sink serialised (one at a time, never re-entrantly from the
// same record). The sink must not call Log/Trace setters.
#ifndef VIOMMU_UTIL_LOG_H_
#define VIOMMU_UTIL_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace viommu::log {

// -d categories, as bits of a mask.
enum LogCategory : uint32_t {
  kLogGuestErrors = 1u << 0,  // "guest_errors": the guest broke the spec
  kLogUnimp = 1u << 1,        // "unimp": the guest used what is not modelled
  kLogTrace = 1u << 31,       // trace events (enabled per event, not here)
};

struct LogRecord {
  // "guest_errors", "unimp" or "trace".
  absl::string_view kind;
  // The trace event's name, or the call site ("vtd_fault.cc:61").
  absl::string_view name;
  // The formatted message (no trailing newline).
  std::string message;
};

using LogSink = std::function<void(const LogRecord&)>;

// One VIOMMU_LOG_* call site: its rate-limit state (internal).
struct CallSite {
  LogCategory category;
  const char* file;
  int line;
  std::atomic<int64_t> window_start{INT64_MIN};
  std::atomic<uint32_t> in_window{0};
  std::atomic<uint64_t> suppressed{0};
};

class Log {
 public:
  static constexpr uint32_t kBurst = 10;
  static constexpr int64_t kWindowNs = 1'000'000'000;

  // The -d mask (category bits); 0 disables every category.
  static void SetMask(uint32_t mask);
  static uint32_t Mask();
  static bool Enabled(LogCategory c) {
    return (mask_.load(std::memory_order_relaxed) & c) != 0;
  }
  // Parses "guest_errors,unimp" into mask bits (trace:PATTERN items are the
  // caller's). Errors: kInvalidArgument naming the unknown item.
  [[nodiscard]] static absl::Status ParseMask(absl::string_view items,
                                              uint32_t* mask);
  // "name  description" lines for -d help.
  static std::string CategoryHelp();
  static absl::string_view CategoryName(LogCategory c);

  // Opens (truncates) `path` as the -D log file; "" closes it (back to
  // stderr). Errors: kNotFound/kPermissionDenied/... with errno's text.
  [[nodiscard]] static absl::Status SetFile(const std::string& path);
  // Installs (or, with nullptr, removes) the embedding application's sink.
  static void SetSink(LogSink sink);

  // How many times a category's call sites fired (printed or not), and how
  // many lines the rate limit held back, since start or ResetCounters.
  static uint64_t Count(LogCategory c);
  static uint64_t Suppressed(LogCategory c);
  static void ResetCounters();

  // The clock the rate limit reads (nanoseconds, monotonic); nullptr
  // restores CLOCK_MONOTONIC. For tests.
  static void SetClockForTest(std::function<int64_t()> clock);

  // Writes one record to the outputs (trace.h and the macros use it).
  static void Write(const LogRecord& record);

 private:
  static std::atomic<uint32_t> mask_;
};

namespace internal {
// Counts the site; returns true when it should print (enabled and within
// its burst), having already printed any pending "suppressed N" summary.
bool Admit(CallSite* site);
void Print(CallSite* site, std::string message);
}  // namespace internal

}  // namespace viommu::log

#define VIOMMU_LOG_INTERNAL(category, ...)                                \
  do {                                                                    \
    static ::viommu::log::CallSite viommu_log_site_{category, __FILE__,   \
                                                    __LINE__};            \
    if (::viommu::log::internal::Admit(&viommu_log_site_)) {              \
      ::viommu::log::internal::Print(&viommu_log_site_,                   \
                                     ::absl::StrFormat(__VA_ARGS__));     \
    }                                                                     \
  } while (0)

// A guest did something architecturally wrong (-d guest_errors).
#define VIOMMU_LOG_GUEST_ERROR(...) \
  VIOMMU_LOG_INTERNAL(::viommu::log::kLogGuestErrors, __VA_ARGS__)
// A guest used a feature viommu does not model (-d unimp).
#define VIOMMU_LOG_UNIMP(...) \
  VIOMMU_LOG_INTERNAL(::viommu::log::kLogUnimp, __VA_ARGS__)

#endif  // VIOMMU_UTIL_LOG_H_
