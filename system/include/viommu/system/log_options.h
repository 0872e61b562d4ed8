// viommu/system/log_options.h — applies -trace, -d and -D (docs/tracing.md)
// to the process-wide trace and log state of viommu/util/{trace,log}.h.
//
//   absl::StatusOr<bool> help = ApplyLogOptions(config, std::cout, std::cerr);
//   if (!help.ok()) return Die(help.status());
//   if (*help) return 0;   // -d help / -trace help printed a list
#ifndef VIOMMU_SYSTEM_LOG_OPTIONS_H_
#define VIOMMU_SYSTEM_LOG_OPTIONS_H_

#include <ostream>

#include "absl/status/statusor.h"
#include "viommu/system/command_line.h"

namespace viommu::system {

// Opens the -D file, sets the -d mask and enables the -trace patterns and
// events files in order. An events file has one pattern per line, `#`
// comments and blank lines ignored, `-PATTERN` disabling. A name without
// a glob character that matches no event is a warning on `warnings`, as in
// QEMU. Returns true when a help list was printed to `out` (-d help,
// -trace help, -d trace:help): the caller exits with status 0.
// Errors: the -D file or an events file cannot be opened (its errno code).
[[nodiscard]] absl::StatusOr<bool> ApplyLogOptions(const VmConfig& config,
                                                   std::ostream& out,
                                                   std::ostream& warnings);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_LOG_OPTIONS_H_
