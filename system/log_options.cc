#include "viommu/system/log_options.h"

#include <errno.h>
#include <string.h>

#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "viommu/util/log.h"
#include "viommu/util/status_macros.h"
#include "viommu/util/trace.h"

namespace viommu::system {
namespace {

// Enables (or, with a leading '-', disables) one pattern; warns as QEMU
// does when a plain name names no event.
void ApplyPattern(absl::string_view pattern, absl::string_view where,
                  std::ostream& warnings) {
  bool enable = true;
  if (absl::StartsWith(pattern, "-")) {
    enable = false;
    pattern.remove_prefix(1);
  }
  if (trace::Trace::SetState(pattern, enable) == 0 &&
      !trace::Trace::IsPattern(pattern)) {
    warnings << "viommu: " << where << ": warning: trace event '" << pattern
             << "' does not exist\n";
  }
}

[[nodiscard]] absl::Status ApplyEventsFile(const std::string& path,
                                           std::ostream& warnings) {
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("-trace events=", path, ": ",
                                     strerror(err)));
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    absl::string_view p = absl::StripAsciiWhitespace(line);
    if (p.empty() || p[0] == '#') continue;
    ApplyPattern(p, absl::StrCat(path, ":", n), warnings);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> ApplyLogOptions(const VmConfig& config, std::ostream& out,
                                     std::ostream& warnings) {
  if (config.log_help) {
    out << log::Log::CategoryHelp()
        << "\nUse \"-d trace:help\" to get a list of trace events.\n";
    return true;
  }
  for (const std::string& p : config.trace_patterns) {
    if (p == "help") {
      for (size_t i = 0; i < trace::kEventCount; ++i) {
        out << trace::Trace::Info(trace::Event(i)).name << "\n";
      }
      return true;
    }
  }
  if (config.log_file) {
    VIOMMU_RETURN_IF_ERROR(log::Log::SetFile(*config.log_file));
  }
  log::Log::SetMask(config.log_mask);
  for (const std::string& f : config.trace_event_files) {
    VIOMMU_RETURN_IF_ERROR(ApplyEventsFile(f, warnings));
  }
  for (const std::string& p : config.trace_patterns) {
    ApplyPattern(p, absl::StrCat("-trace enable=", p), warnings);
  }
  return false;
}

}  // namespace viommu::system
