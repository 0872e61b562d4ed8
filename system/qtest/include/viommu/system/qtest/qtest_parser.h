// viommu/system/qtest/qtest_parser.h — QEMU's qtest line protocol, parsed
// into a command (pure: no I/O, no machine, no allocation on success); the
// fuzz target of the front end.
//
//   absl::StatusOr<QtestCommand> c = ParseQtestLine("writel 0x1000 0x12");
//   if (!c.ok()) reply(QtestErrorReply(c.status()));   // "ERR ..."/"FAIL ..."
//
// Syntax (QEMU system/qtest.c; docs/architecture.md, qtest): the line (without
// its '\n') is split on every single space like g_strsplit(line, " "), so
// two spaces make an empty word; a NUL byte ends the line (QEMU copies the
// line with g_strndup). Words after the last argument a command uses are
// ignored. Numbers are C strtoull/strtoll with base 0 (optional leading
// whitespace and sign, 0x hex, leading-0 octal, decimal) and must fill the
// word; unsigned numbers wrap a leading '-' as strtoull does.
//
// Where QEMU answers, viommu answers the same:
//   * unknown command          FAIL Unknown command '<word>'  (kNotFound)
//   * write/b64write DATA < 3  ERR invalid argument size
//   * b64read SIZE 0           OK  (empty base64; executed, not an error)
//   * memset SIZE 0            OK
// Where QEMU asserts (and so aborts) or reads/writes undefined bytes,
// viommu answers `ERR <command>: <reason>` (kInvalidArgument) and keeps
// going:
//   * a missing argument, a number that is empty, malformed, has trailing
//     characters or overflows its C type (u64; int for set_irq_in)
//   * in/out port above 0xffff; read SIZE 0; a negative set_irq_in NUM
//   * a negative clock_set NS (QEMU: `FAIL <now>`, as for any NS in the
//     past; kept ERR because tests/qtest/machine_test.cc pins it)
//   * an access whose last byte wraps past 2^64 (QEMU would wrap around)
//   * write DATA with a non-hex digit in the bytes used (QEMU stores
//     garbage), b64write DATA with a character outside the base64 alphabet
//     and '=' (GLib silently skips it)
//   * a blank line is no command at all (QtestOp::kNone, no answer; QEMU
//     asserts on it)
// Size limits that depend on how the answer is delivered (read buffers,
// fill lengths) are the executor's (qtest_session.h), not the parser's.
#ifndef VIOMMU_SYSTEM_QTEST_QTEST_PARSER_H_
#define VIOMMU_SYSTEM_QTEST_QTEST_PARSER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace viommu::system {

enum class QtestOp : uint8_t {
  kNone,      // blank line: no answer
  kOut,       // outb/outw/outl PORT VALUE        (size 1/2/4)
  kIn,        // inb/inw/inl PORT                 (size 1/2/4)
  kWrite,     // writeb/w/l/q ADDR VALUE          (size 1/2/4/8)
  kRead,      // readb/w/l/q ADDR                 (size 1/2/4/8)
  kBufRead,   // read ADDR SIZE
  kBufWrite,  // write ADDR SIZE 0xHEX
  kB64Read,   // b64read ADDR SIZE
  kB64Write,  // b64write ADDR SIZE B64
  kMemset,    // memset ADDR SIZE PATTERN
  kEndianness,
  kClockStep,        // clock_step [NS]
  kClockSet,         // clock_set NS
  kIrqInterceptIn,   // irq_intercept_in PATH [NAME]
  kIrqInterceptOut,  // irq_intercept_out PATH [NAME]
  kSetIrqIn,         // set_irq_in PATH NAME NUM LEVEL
  kModuleLoad,       // module_load PREFIX NAME
};

// A parsed line. The string_views point into the parsed line and are valid
// only as long as it is.
struct QtestCommand {
  QtestOp op = QtestOp::kNone;
  unsigned size = 0;     // access width of in/out/read/write
  uint64_t addr = 0;     // address, port, or set_irq_in NUM
  uint64_t value = 0;    // VALUE, SIZE (buffers and memset)
  uint8_t pattern = 0;   // memset PATTERN (truncated as memset() does)
  int64_t ns = 0;        // clock_step NS, clock_set NS
  int64_t level = 0;     // set_irq_in LEVEL
  bool has_arg = false;  // clock_step NS given; irq_intercept_* NAME given
  // write: the hex digits after the 2-character prefix (validated for the
  // bytes that SIZE uses; may be shorter: the rest is zero).
  // b64write: the base64 text (validated alphabet).
  absl::string_view data;
  absl::string_view path;  // irq_intercept_*, set_irq_in; module_load PREFIX
  absl::string_view name;  // irq_intercept_* NAME, set_irq_in NAME,
                           // module_load NAME
};

// Errors: kInvalidArgument ("ERR <message>"), kNotFound ("FAIL <message>");
// the message is the answer text after the ERR/FAIL word.
[[nodiscard]] absl::StatusOr<QtestCommand> ParseQtestLine(
    absl::string_view line);

// The answer line for a parse error (without newline).
std::string QtestErrorReply(const absl::Status& status);

// strtoull(word, &end, 0) / strtoll that must consume the whole word and
// not overflow. Exposed for tests.
bool ParseQtestU64(absl::string_view word, uint64_t* out);
bool ParseQtestI64(absl::string_view word, int64_t* out);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QTEST_QTEST_PARSER_H_
