// viommu/system/qtest/qtest_parser.h — QEMU's qtest line protocol, parsed
// into a command (pure: no I/O, no machine), the fuzz target of the front
// end.
//
//   absl::StatusOr<QtestCommand> c = ParseQtestLine("writel 0x1000 0x12");
//   if (!c.ok()) reply(QtestErrorReply(c.status()));   // "ERR ..."/"FAIL ..."
//
// Syntax (reference/qemu.md §5.1): words split on single spaces; numbers
// base 0 as strtoull (0x hex, leading 0 octal, decimal). Where QEMU
// asserts (missing arguments, bad numbers, port > 0xffff, read of size 0)
// and so crashes, viommu answers `ERR <reason>` and keeps going; an unknown
// command is `FAIL Unknown command '<word>'` as in QEMU. Sizes are bounded
// to 2^64 - addr so that address arithmetic cannot wrap.
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_PARSER_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_PARSER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace viommu::system {

enum class QtestOp : uint8_t {
  kNone,  // blank line: no answer
  kOut,
  kIn,
  kWrite,
  kRead,  // writeb/w/l/q, readb/w/l/q: `size` 1, 2, 4, 8
  kBufRead,
  kBufWrite,
  kB64Read,
  kB64Write,
  kMemset,
  kEndianness,
  kClockStep,
  kClockSet,
  kIrqInterceptIn,
  kIrqInterceptOut,
  kSetIrqIn,
};

struct QtestCommand {
  QtestOp op = QtestOp::kNone;
  unsigned size = 0;      // access width for in/out/read/write
  uint64_t addr = 0;      // address or port
  uint64_t value = 0;     // value, length (buffers), or pattern (memset)
  bool has_value = true;  // clock_step without NS: false
  std::string data;       // decoded bytes of write / b64write
  std::string path;       // irq_intercept_*, set_irq_in
  std::string name;       // irq_intercept_out NAME, set_irq_in NAME
  int64_t level = 0;      // set_irq_in LEVEL (value holds NUM)
};

// kInvalidArgument: "ERR <message>"; kNotFound: "FAIL <message>" (the
// message already carries QEMU's text).
absl::StatusOr<QtestCommand> ParseQtestLine(absl::string_view line);

// The reply line for a parse error (without newline).
std::string QtestErrorReply(const absl::Status& status);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_PARSER_H_
