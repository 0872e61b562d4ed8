// tests/host/proc_status.h — one kB figure of a process's
// /proc/PID/status, as the real-kernel tests read what the kernel holds
// pinned or locked for a process ("VmPin" for iommufd, "VmLck" for type1).
//
//   std::optional<uint64_t> kib = ProcStatusKiB(getpid(), "VmPin");
#ifndef VIOMMU_TESTS_HOST_PROC_STATUS_H_
#define VIOMMU_TESTS_HOST_PROC_STATUS_H_

#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace viommu::testing {

// The number of the line "<field>: N kB", or nullopt (no such process,
// line or number).
inline std::optional<uint64_t> ProcStatusKiB(pid_t pid,
                                             const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, field + ":")) continue;
    const size_t at = line.find_first_of("0123456789");
    uint64_t v = 0;
    if (at == std::string::npos ||
        !absl::SimpleAtoi(
            line.substr(at, line.find_first_not_of("0123456789", at) - at),
            &v)) {
      return std::nullopt;
    }
    return v;
  }
  return std::nullopt;
}

}  // namespace viommu::testing

#endif  // VIOMMU_TESTS_HOST_PROC_STATUS_H_
