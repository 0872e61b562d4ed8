// viommu/system/command_line.h — QEMU-compatible command-line parsing for
// build/viommu (ARCHITECTURE.md §5, a CONTRACT). Pure: no I/O.
//
//   absl::StatusOr<VmConfig> c = ParseCommandLine({"-M", "q35", "-m", "256M",
//       "-device", "edu,addr=04.0", "-qtest", "stdio"});
//
// Options take QEMU's `key=value,...` lists with ",," for a literal comma;
// `-device DRIVER,...` and `-device driver=DRIVER,...` are the same; `--opt`
// equals `-opt`. Flags that mean nothing here (-display, -nodefaults,
// -accel, -bios, -S, -audio, -serial, -no-shutdown, -name) are accepted and
// ignored; anything else is an error naming it. -trace, -d and -D are
// QEMU's (docs/tracing.md); an unknown -d category is an error.
#ifndef VIOMMU_SYSTEM_COMMAND_LINE_H_
#define VIOMMU_SYSTEM_COMMAND_LINE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace viommu::system {

// One `-device`/`-object`/`-chardev` list: its first element (the driver,
// object type or backend) and the key=value pairs after it, in order.
struct OptionList {
  std::string head;
  std::vector<std::pair<std::string, std::string>> props;
  // The value of `key`, if given (the last one wins, as in QEMU).
  std::optional<std::string> Get(absl::string_view key) const;
};

struct VmConfig {
  std::string machine = "q35";
  std::string vfio_host = "model";  // -machine q35,vfio-host=model|linux
  uint64_t ram_size = 128ull << 20;
  std::vector<OptionList> devices;
  std::vector<OptionList> objects;
  std::vector<OptionList> chardevs;
  std::vector<OptionList> monitors;  // -mon chardev=ID,mode=control
  std::vector<std::string> qmp;      // -qmp arguments, verbatim
  std::optional<std::string> qtest;  // -qtest stdio | unix:PATH
  std::optional<std::string> qtest_log;
  // Tracing and logging (docs/tracing.md), applied by ApplyLogOptions:
  // -trace [enable=]PATTERN and -d trace:PATTERN, in order;
  std::vector<std::string> trace_patterns;
  std::vector<std::string> trace_event_files;  // -trace events=FILE
  uint32_t log_mask = 0;                       // -d guest_errors,unimp
  bool log_help = false;                       // -d help
  std::optional<std::string> log_file;         // -D FILE, -trace file=FILE
};

// Splits "a,b=c,,d" into head "a" and {b: "c,d"}. A first element that
// contains '=' is a property (the head stays empty unless `implied_key`
// names the key it would have, e.g. "driver" for -device).
[[nodiscard]] absl::StatusOr<OptionList> ParseOptionList(
    absl::string_view text, absl::string_view implied_key);

// QEMU's size syntax: a number with an optional K/M/G/T/P/E suffix (base
// 1024); `default_suffix` applies when there is none ('M' for -m).
[[nodiscard]] absl::StatusOr<uint64_t> ParseSize(absl::string_view text,
                                                 char default_suffix);

// Errors: kInvalidArgument naming the flag or the value.
[[nodiscard]] absl::StatusOr<VmConfig> ParseCommandLine(
    absl::Span<const std::string> args);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_COMMAND_LINE_H_
