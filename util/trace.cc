#include "viommu/util/trace.h"

#include "viommu/util/log.h"

namespace viommu::trace {
namespace {

constexpr EventInfo kEvents[] = {
#define VIOMMU_TRACE_EVENT(name, category, format) {#name, category, format},
#include "viommu/util/trace_events.def"
#undef VIOMMU_TRACE_EVENT
};
static_assert(sizeof(kEvents) / sizeof(kEvents[0]) == kEventCount);

}  // namespace

namespace internal {

std::atomic<bool> g_event_enabled[kEventCount];

void Emit(Event event, std::string message) {
  log::Log::Write(log::LogRecord{.kind = "trace",
                                 .name = kEvents[static_cast<size_t>(event)].name,
                                 .message = std::move(message)});
}

}  // namespace internal

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  // Iterative matcher with one backtrack point (the last '*'): linear in
  // practice, O(|p|·|t|) at worst, no recursion.
  size_t p = 0, t = 0;
  size_t star = absl::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_t = t;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

size_t Trace::SetState(absl::string_view pattern, bool enabled) {
  size_t n = 0;
  for (size_t i = 0; i < kEventCount; ++i) {
    if (GlobMatch(pattern, kEvents[i].name)) {
      internal::g_event_enabled[i].store(enabled, std::memory_order_relaxed);
      ++n;
    }
  }
  return n;
}

void Trace::DisableAll() {
  for (auto& e : internal::g_event_enabled) {
    e.store(false, std::memory_order_relaxed);
  }
}

const EventInfo& Trace::Info(Event event) {
  return kEvents[static_cast<size_t>(event)];
}

std::vector<Event> Trace::Match(absl::string_view pattern) {
  std::vector<Event> out;
  for (size_t i = 0; i < kEventCount; ++i) {
    if (GlobMatch(pattern, kEvents[i].name)) out.push_back(Event(i));
  }
  return out;
}

bool Trace::IsPattern(absl::string_view name) {
  return name.find_first_of("*?") != absl::string_view::npos;
}

}  // namespace viommu::trace
