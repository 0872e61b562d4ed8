#include "viommu/util/log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <cstdio>
#include <memory>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "viommu/util/mutex.h"

namespace viommu::log {
namespace {

struct CategoryInfo {
  LogCategory bit;
  absl::string_view name;
  absl::string_view help;
};

constexpr CategoryInfo kCategories[] = {
    {kLogGuestErrors, "guest_errors",
     "log when the guest does something architecturally invalid"},
    {kLogUnimp, "unimp", "log use of functionality viommu does not model"},
};

int Index(LogCategory c) { return c == kLogUnimp ? 1 : 0; }

std::atomic<uint64_t> g_count[2];
std::atomic<uint64_t> g_suppressed[2];

// The outputs and the clock, behind one lock (the slow path only).
struct Outputs {
  Mutex mu;
  FILE* file ABSL_GUARDED_BY(mu) = nullptr;
  LogSink sink ABSL_GUARDED_BY(mu);
  std::function<int64_t()> clock ABSL_GUARDED_BY(mu);
};

Outputs& Out() {
  static Outputs* out = new Outputs;
  return *out;
}

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t Now() {
  Outputs& o = Out();
  MutexLock lock(&o.mu);
  return o.clock ? o.clock() : MonotonicNs();
}

std::string SiteName(const CallSite& site) {
  absl::string_view file = site.file;
  if (size_t slash = file.rfind('/'); slash != absl::string_view::npos) {
    file.remove_prefix(slash + 1);
  }
  return absl::StrCat(file, ":", site.line);
}

// Serialises the rate-limit windows of every call site.
ABSL_CONST_INIT Mutex g_site_mu;

}  // namespace

std::atomic<uint32_t> Log::mask_{0};

void Log::SetMask(uint32_t mask) {
  mask_.store(mask, std::memory_order_relaxed);
}

uint32_t Log::Mask() { return mask_.load(std::memory_order_relaxed); }

absl::Status Log::ParseMask(absl::string_view items, uint32_t* mask) {
  uint32_t m = 0;
  for (absl::string_view item : absl::StrSplit(items, ',', absl::SkipEmpty())) {
    bool found = false;
    for (const CategoryInfo& c : kCategories) {
      if (item == c.name) {
        m |= c.bit;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("-d: unknown log category '", item,
                       "' (use -d help for a list)"));
    }
  }
  *mask = m;
  return absl::OkStatus();
}

std::string Log::CategoryHelp() {
  std::string out = "Log items (comma separated):\n";
  for (const CategoryInfo& c : kCategories) {
    absl::StrAppend(&out, absl::StrFormat("%-15s %s\n", c.name, c.help));
  }
  absl::StrAppend(&out, absl::StrFormat("%-15s %s\n", "trace:PATTERN",
                                        "enable trace events"));
  return out;
}

absl::string_view Log::CategoryName(LogCategory c) {
  if (c == kLogTrace) return "trace";
  return kCategories[Index(c)].name;
}

absl::Status Log::SetFile(const std::string& path) {
  FILE* f = nullptr;
  if (!path.empty()) {
    f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
      const int err = errno;
      return absl::Status(absl::ErrnoToStatusCode(err),
                          absl::StrCat("-D ", path, ": ", strerror(err)));
    }
    setvbuf(f, nullptr, _IOLBF, 0);
  }
  Outputs& o = Out();
  MutexLock lock(&o.mu);
  if (o.file != nullptr) std::fclose(o.file);
  o.file = f;
  return absl::OkStatus();
}

void Log::SetSink(LogSink sink) {
  Outputs& o = Out();
  MutexLock lock(&o.mu);
  o.sink = std::move(sink);
}

uint64_t Log::Count(LogCategory c) {
  return g_count[Index(c)].load(std::memory_order_relaxed);
}

uint64_t Log::Suppressed(LogCategory c) {
  return g_suppressed[Index(c)].load(std::memory_order_relaxed);
}

void Log::ResetCounters() {
  for (auto& c : g_count) c.store(0, std::memory_order_relaxed);
  for (auto& c : g_suppressed) c.store(0, std::memory_order_relaxed);
}

void Log::SetClockForTest(std::function<int64_t()> clock) {
  Outputs& o = Out();
  MutexLock lock(&o.mu);
  o.clock = std::move(clock);
}

void Log::Write(const LogRecord& record) {
  Outputs& o = Out();
  MutexLock lock(&o.mu);
  if (o.sink) o.sink(record);
  FILE* f = o.file != nullptr ? o.file : (o.sink ? nullptr : stderr);
  if (f == nullptr) return;
  if (record.kind == "trace") {
    std::fprintf(f, "%.*s %s\n", static_cast<int>(record.name.size()),
                 record.name.data(), record.message.c_str());
  } else {
    std::fprintf(f, "%.*s: %s\n", static_cast<int>(record.kind.size()),
                 record.kind.data(), record.message.c_str());
  }
}

namespace internal {

bool Admit(CallSite* site) {
  g_count[Index(site->category)].fetch_add(1, std::memory_order_relaxed);
  if (!Log::Enabled(site->category)) return false;
  const int64_t now = Now();
  uint64_t summary = 0;
  bool admit;
  {
    MutexLock lock(&g_site_mu);
    int64_t start = site->window_start.load(std::memory_order_relaxed);
    if (start == INT64_MIN || now - start >= Log::kWindowNs || now < start) {
      site->window_start.store(now, std::memory_order_relaxed);
      site->in_window.store(0, std::memory_order_relaxed);
      summary = site->suppressed.exchange(0, std::memory_order_relaxed);
    }
    admit = site->in_window.load(std::memory_order_relaxed) < Log::kBurst;
    if (admit) {
      site->in_window.fetch_add(1, std::memory_order_relaxed);
    } else {
      site->suppressed.fetch_add(1, std::memory_order_relaxed);
      g_suppressed[Index(site->category)].fetch_add(1,
                                                    std::memory_order_relaxed);
    }
  }
  if (summary != 0) {
    const std::string name = SiteName(*site);
    Log::Write(LogRecord{
        .kind = Log::CategoryName(site->category),
        .name = name,
        .message = absl::StrCat(name, ": suppressed ", summary,
                                " similar messages")});
  }
  return admit;
}

void Print(CallSite* site, std::string message) {
  const std::string name = SiteName(*site);
  Log::Write(LogRecord{.kind = Log::CategoryName(site->category),
                       .name = name,
                       .message = std::move(message)});
}

}  // namespace internal
}  // namespace viommu::log
