#include "viommu/system/qtest/qtest_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace viommu::system {
namespace {

// Words of a line as g_strsplit(line, " ") makes them; only the first
// kMaxWords are kept (no command uses more), `count` counts them all up to
// kMaxWords.
class Words {
 public:
  static constexpr size_t kMaxWords = 5;

  explicit Words(absl::string_view line) {
    size_t start = 0;
    while (count_ < kMaxWords) {
      const size_t sp = line.find(' ', start);
      if (sp == absl::string_view::npos) {
        w_[count_++] = line.substr(start);
        break;
      }
      w_[count_++] = line.substr(start, sp - start);
      start = sp + 1;
    }
  }
  size_t count() const { return count_; }
  absl::string_view operator[](size_t i) const { return w_[i]; }

 private:
  absl::string_view w_[kMaxWords];
  size_t count_ = 0;
};

[[nodiscard]] absl::Status Err(absl::string_view cmd, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(cmd, ": ", why));
}

[[nodiscard]] absl::Status Missing(absl::string_view cmd, size_t n) {
  return Err(cmd, absl::StrCat("expected ", n, " argument", n == 1 ? "" : "s"));
}

[[nodiscard]] absl::Status BadNumber(absl::string_view cmd,
                                     absl::string_view what,
                                     absl::string_view word) {
  return Err(cmd, absl::StrCat("invalid ", what, " '", word, "'"));
}

bool IsCSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

bool IsHex(char c) { return DigitValue(c) < 16; }

// The magnitude part of strtoull/strtoll: optional whitespace and sign,
// base-0 prefix, at least one digit, nothing after. `*neg` set for '-'.
bool ParseMagnitude(absl::string_view s, uint64_t* mag, bool* neg) {
  size_t i = 0;
  while (i < s.size() && IsCSpace(s[i])) ++i;
  *neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    *neg = s[i] == '-';
    ++i;
  }
  unsigned base = 10;
  if (i + 2 < s.size() && s[i] == '0' && (s[i + 1] | 0x20) == 'x' &&
      IsHex(s[i + 2])) {
    base = 16;
    i += 2;
  } else if (i < s.size() && s[i] == '0') {
    base = 8;
  }
  if (i == s.size()) return false;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    const unsigned d = static_cast<unsigned>(DigitValue(s[i]));
    if (d >= base) return false;
    if (v > (std::numeric_limits<uint64_t>::max() - d) / base) return false;
    v = v * base + d;
  }
  *mag = v;
  return true;
}

bool InRange(uint64_t addr, uint64_t len) {
  return len == 0 || addr + (len - 1) >= addr;
}

unsigned WidthOf(char suffix) {
  switch (suffix) {
    case 'b':
      return 1;
    case 'w':
      return 2;
    case 'l':
      return 4;
    case 'q':
      return 8;
    default:
      return 0;
  }
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

// ADDR and SIZE of read/write/b64read/b64write/memset.
[[nodiscard]] absl::Status AddrAndSize(const Words& w, QtestCommand* c) {
  if (!ParseQtestU64(w[1], &c->addr)) return BadNumber(w[0], "address", w[1]);
  if (!ParseQtestU64(w[2], &c->value)) return BadNumber(w[0], "size", w[2]);
  if (!InRange(c->addr, c->value)) {
    return Err(w[0], "address + size wraps past 2^64");
  }
  return absl::OkStatus();
}

#define QTEST_TRY(expr)       \
  do {                        \
    absl::Status s_ = (expr); \
    if (!s_.ok()) return s_;  \
  } while (0)

[[nodiscard]] absl::StatusOr<QtestCommand> ParsePio(const Words& w,
                                                    QtestCommand c) {
  const absl::string_view cmd = w[0];
  const bool out = c.op == QtestOp::kOut;
  if (w.count() < (out ? 3u : 2u)) return Missing(cmd, out ? 2 : 1);
  if (!ParseQtestU64(w[1], &c.addr)) return BadNumber(cmd, "port", w[1]);
  if (out && !ParseQtestU64(w[2], &c.value)) {
    return BadNumber(cmd, "value", w[2]);
  }
  if (c.addr > 0xffff) return Err(cmd, "port above 0xffff");
  return c;
}

[[nodiscard]] absl::StatusOr<QtestCommand> ParseMmio(const Words& w,
                                                     QtestCommand c) {
  const absl::string_view cmd = w[0];
  const bool write = c.op == QtestOp::kWrite;
  if (w.count() < (write ? 3u : 2u)) return Missing(cmd, write ? 2 : 1);
  if (!ParseQtestU64(w[1], &c.addr)) return BadNumber(cmd, "address", w[1]);
  if (write && !ParseQtestU64(w[2], &c.value)) {
    return BadNumber(cmd, "value", w[2]);
  }
  if (!InRange(c.addr, c.size)) {
    return Err(cmd, "address + size wraps past 2^64");
  }
  return c;
}

[[nodiscard]] absl::StatusOr<QtestCommand> ParseBuffer(const Words& w,
                                                       QtestCommand c) {
  const absl::string_view cmd = w[0];
  const bool has_data = c.op == QtestOp::kBufWrite ||
                        c.op == QtestOp::kB64Write || c.op == QtestOp::kMemset;
  if (w.count() < (has_data ? 4u : 3u)) return Missing(cmd, has_data ? 3 : 2);
  QTEST_TRY(AddrAndSize(w, &c));
  switch (c.op) {
    case QtestOp::kBufRead:
      if (c.value == 0) return Err(cmd, "size must not be 0");
      break;
    case QtestOp::kMemset: {
      uint64_t pattern = 0;
      if (!ParseQtestU64(w[3], &pattern)) {
        return BadNumber(cmd, "pattern", w[3]);
      }
      c.pattern = static_cast<uint8_t>(pattern);
      break;
    }
    case QtestOp::kBufWrite: {
      // QEMU skips the first two characters ("0x") unchecked and uses
      // digit pairs while they last, up to SIZE bytes.
      if (w[3].size() < 3)
        return absl::InvalidArgumentError("invalid argument size");
      c.data = w[3].substr(2);
      const uint64_t used = std::min<uint64_t>(c.data.size() / 2, c.value);
      for (size_t i = 0; i < 2 * used; ++i) {
        if (!IsHex(c.data[i])) {
          return Err(cmd, absl::StrCat("invalid hex digit at offset ", i + 2));
        }
      }
      break;
    }
    case QtestOp::kB64Write:
      if (w[3].size() < 3)
        return absl::InvalidArgumentError("invalid argument size");
      c.data = w[3];
      for (size_t i = 0; i < c.data.size(); ++i) {
        if (!IsBase64Char(c.data[i])) {
          return Err(cmd,
                     absl::StrCat("invalid base64 character at offset ", i));
        }
      }
      break;
    default:
      break;
  }
  return c;
}

[[nodiscard]] absl::StatusOr<QtestCommand> ParseClock(const Words& w,
                                                      QtestCommand c) {
  const absl::string_view cmd = w[0];
  c.has_arg = w.count() > 1;
  if (c.op == QtestOp::kClockSet && !c.has_arg) return Missing(cmd, 1);
  if (c.has_arg && !ParseQtestI64(w[1], &c.ns)) {
    return BadNumber(cmd, "time", w[1]);
  }
  // QEMU answers "FAIL <now>" for a negative clock_set; viommu's machine
  // tests pin ERR for it (tests/qtest/machine_test.cc).
  if (c.op == QtestOp::kClockSet && c.ns < 0) {
    return BadNumber(cmd, "time", w[1]);
  }
  return c;
}

[[nodiscard]] absl::StatusOr<QtestCommand> ParseIrq(const Words& w,
                                                    QtestCommand c) {
  const absl::string_view cmd = w[0];
  switch (c.op) {
    case QtestOp::kIrqInterceptIn:
    case QtestOp::kIrqInterceptOut:
      if (w.count() < 2) return Missing(cmd, 1);
      c.path = w[1];
      c.has_arg = w.count() > 2;
      if (c.has_arg) c.name = w[2];
      return c;
    case QtestOp::kSetIrqIn: {
      if (w.count() < 5) return Missing(cmd, 4);
      c.path = w[1];
      c.name = w[2];
      int64_t num = 0;
      // qemu_strtoi: C int range.
      if (!ParseQtestI64(w[3], &num) || num < 0 ||
          num > std::numeric_limits<int>::max()) {
        return BadNumber(cmd, "irq number", w[3]);
      }
      c.addr = static_cast<uint64_t>(num);
      if (!ParseQtestI64(w[4], &c.level) ||
          c.level < std::numeric_limits<int>::min() ||
          c.level > std::numeric_limits<int>::max()) {
        return BadNumber(cmd, "level", w[4]);
      }
      return c;
    }
    default:  // kModuleLoad
      if (w.count() < 3) return Missing(cmd, 2);
      c.path = w[1];
      c.name = w[2];
      return c;
  }
}

}  // namespace

bool ParseQtestU64(absl::string_view word, uint64_t* out) {
  uint64_t mag = 0;
  bool neg = false;
  if (!ParseMagnitude(word, &mag, &neg)) return false;
  *out = neg ? 0 - mag : mag;
  return true;
}

bool ParseQtestI64(absl::string_view word, int64_t* out) {
  uint64_t mag = 0;
  bool neg = false;
  if (!ParseMagnitude(word, &mag, &neg)) return false;
  if (mag > (neg ? uint64_t{1} << 63 : uint64_t{INT64_MAX})) return false;
  *out = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return true;
}

absl::StatusOr<QtestCommand> ParseQtestLine(absl::string_view line) {
  // QEMU 7.2 looks for the newline with strchr: after a NUL byte it never
  // finds one and the connection goes deaf (a NUL at the start of a line is
  // an empty command, which it asserts on). viommu answers the line as it
  // answers other malformed ones and goes on.
  if (std::memchr(line.data(), '\0', line.size()) != nullptr) {
    return absl::InvalidArgumentError("NUL byte in command");
  }
  QtestCommand c;
  if (line.empty()) return c;  // kNone
  const Words w(line);
  const absl::string_view cmd = w[0];

  switch (cmd.size()) {
    case 3:
      if (cmd.substr(0, 2) == "in" && WidthOf(cmd[2]) != 0 && cmd[2] != 'q') {
        c.op = QtestOp::kIn;
        c.size = WidthOf(cmd[2]);
        return ParsePio(w, c);
      }
      break;
    case 4:
      if (cmd.substr(0, 3) == "out" && WidthOf(cmd[3]) != 0 && cmd[3] != 'q') {
        c.op = QtestOp::kOut;
        c.size = WidthOf(cmd[3]);
        return ParsePio(w, c);
      }
      if (cmd == "read") {
        c.op = QtestOp::kBufRead;
        return ParseBuffer(w, c);
      }
      break;
    case 5:
      if (cmd.substr(0, 4) == "read" && WidthOf(cmd[4]) != 0) {
        c.op = QtestOp::kRead;
        c.size = WidthOf(cmd[4]);
        return ParseMmio(w, c);
      }
      if (cmd == "write") {
        c.op = QtestOp::kBufWrite;
        return ParseBuffer(w, c);
      }
      break;
    case 6:
      if (cmd.substr(0, 5) == "write" && WidthOf(cmd[5]) != 0) {
        c.op = QtestOp::kWrite;
        c.size = WidthOf(cmd[5]);
        return ParseMmio(w, c);
      }
      if (cmd == "memset") {
        c.op = QtestOp::kMemset;
        return ParseBuffer(w, c);
      }
      break;
    default:
      break;
  }
  if (cmd == "b64read" || cmd == "b64write") {
    c.op = cmd == "b64read" ? QtestOp::kB64Read : QtestOp::kB64Write;
    return ParseBuffer(w, c);
  }
  if (cmd == "endianness") {
    c.op = QtestOp::kEndianness;
    return c;
  }
  if (cmd == "clock_step" || cmd == "clock_set") {
    c.op = cmd == "clock_step" ? QtestOp::kClockStep : QtestOp::kClockSet;
    return ParseClock(w, c);
  }
  if (cmd == "irq_intercept_in" || cmd == "irq_intercept_out") {
    c.op = cmd == "irq_intercept_in" ? QtestOp::kIrqInterceptIn
                                     : QtestOp::kIrqInterceptOut;
    return ParseIrq(w, c);
  }
  if (cmd == "set_irq_in" || cmd == "module_load") {
    c.op = cmd == "set_irq_in" ? QtestOp::kSetIrqIn : QtestOp::kModuleLoad;
    return ParseIrq(w, c);
  }
  return absl::NotFoundError(absl::StrCat("Unknown command '", cmd, "'"));
}

std::string QtestErrorReply(const absl::Status& status) {
  return absl::StrCat(
      status.code() == absl::StatusCode::kNotFound ? "FAIL " : "ERR ",
      status.message());
}

}  // namespace viommu::system
