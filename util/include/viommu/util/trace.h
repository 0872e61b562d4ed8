// viommu/util/trace.h — named trace events, enabled by glob at run time.
//
// Every event is one line of viommu/util/trace_events.def (name, category,
// absl::StrFormat format). A call site is one line:
//
//   VIOMMU_TRACE(vtd_reg_write, addr, size, val);
//   Trace::Enable("vtd_*");          // -trace enable=vtd_*, QMP
//
// Disabled, a call site costs one relaxed atomic load of the event's flag
// and a not-taken branch: the arguments are neither formatted nor (when
// they have no side effects) evaluated. Enabled, the message is formatted
// and goes out through viommu/util/log.h as a LogRecord of kind "trace"
// (stderr, the -D file, the embedding application's sink).
//
// Thread safety: every function may be called from any thread; enabling
// races benignly with call sites (an event may fire once more or less).
#ifndef VIOMMU_UTIL_TRACE_H_
#define VIOMMU_UTIL_TRACE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace viommu::trace {

// One enumerator per event of trace_events.def, in file order.
enum class Event : uint16_t {
#define VIOMMU_TRACE_EVENT(name, category, format) name,
#include "viommu/util/trace_events.def"
#undef VIOMMU_TRACE_EVENT
  kCount
};

inline constexpr size_t kEventCount = static_cast<size_t>(Event::kCount);

struct EventInfo {
  absl::string_view name;
  absl::string_view category;  // "vtd", "vfio", "memory", "qtest", "qmp"
  absl::string_view format;
};

namespace internal {
// One flag per event; relaxed loads at call sites.
extern std::atomic<bool> g_event_enabled[kEventCount];
// Formats nothing: hands the formatted message to the log output.
void Emit(Event event, std::string message);
}  // namespace internal

class Trace {
 public:
  // Enables (or disables) every event whose name matches `pattern`, a glob
  // with `*` and `?` as QEMU's -trace accepts. Returns how many matched.
  static size_t Enable(absl::string_view pattern) {
    return SetState(pattern, true);
  }
  static size_t Disable(absl::string_view pattern) {
    return SetState(pattern, false);
  }
  static size_t SetState(absl::string_view pattern, bool enabled);
  static void DisableAll();

  static bool IsEnabled(Event event) {
    return internal::g_event_enabled[static_cast<size_t>(event)].load(
        std::memory_order_relaxed);
  }
  static const EventInfo& Info(Event event);
  // The events matching `pattern`, in definition order.
  static std::vector<Event> Match(absl::string_view pattern);
  // True when `name` contains a glob character (QEMU warns only when a
  // pattern without one names no event).
  static bool IsPattern(absl::string_view name);
};

// The glob matcher behind Enable: `*` is any run, `?` one character.
bool GlobMatch(absl::string_view pattern, absl::string_view text);

// One function per event, so the format literal and the argument types
// meet at compile time (clang checks StrFormat formats statically).
namespace emit {
#define VIOMMU_TRACE_EVENT(name, category, format)                   \
  template <typename... Args>                                        \
  void name(const Args&... args) {                                   \
    internal::Emit(Event::name, absl::StrFormat(format, args...));   \
  }
#include "viommu/util/trace_events.def"
#undef VIOMMU_TRACE_EVENT
}  // namespace emit

}  // namespace viommu::trace

// The call site: one relaxed load when the event is off.
#define VIOMMU_TRACE(name, ...)                                         \
  do {                                                                  \
    if (__builtin_expect(::viommu::trace::internal::g_event_enabled     \
                             [static_cast<size_t>(                      \
                                  ::viommu::trace::Event::name)]        \
                                 .load(std::memory_order_relaxed),      \
                         0)) {                                          \
      ::viommu::trace::emit::name(__VA_ARGS__);                         \
    }                                                                   \
  } while (0)

#endif  // VIOMMU_UTIL_TRACE_H_
