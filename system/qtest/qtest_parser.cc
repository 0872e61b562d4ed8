#include "viommu/system/qtest/qtest_parser.h"

#include <charconv>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace viommu::system {
namespace {

// Bounds that keep hostile sizes from allocating or looping without end.
constexpr uint64_t kMaxReadSize = uint64_t{64} << 20;  // read, b64read
constexpr uint64_t kMaxFillSize = uint64_t{16} << 30;  // write, memset

absl::Status Err(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

// strtoull(s, nullptr, 0) that must consume the whole word.
bool ParseU64(absl::string_view s, uint64_t* out) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  } else if (s.size() > 1 && s[0] == '0') {
    s.remove_prefix(1);
    base = 8;
  }
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseI64(absl::string_view s, int64_t* out) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  uint64_t v = 0;
  if (!ParseU64(s, &v) || v > (neg ? uint64_t{1} << 63 : INT64_MAX)) {
    return false;
  }
  *out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Words {
 public:
  explicit Words(absl::string_view line) : words_(absl::StrSplit(line, ' ')) {}
  size_t size() const { return words_.size(); }
  absl::string_view operator[](size_t i) const { return words_[i]; }

  absl::Status Need(size_t n) const {
    if (words_.size() < n + 1) {
      return Err(absl::StrCat(words_[0], ": expected ", n, " argument",
                              n == 1 ? "" : "s"));
    }
    return absl::OkStatus();
  }
  absl::Status U64(size_t i, const char* what, uint64_t* out) const {
    if (!ParseU64(words_[i], out)) {
      return Err(
          absl::StrCat(words_[0], ": invalid ", what, " '", words_[i], "'"));
    }
    return absl::OkStatus();
  }

 private:
  std::vector<absl::string_view> words_;
};

#define QTEST_TRY(expr)       \
  do {                        \
    absl::Status s_ = (expr); \
    if (!s_.ok()) return s_;  \
  } while (0)

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

// ADDR SIZE with addr + size not wrapping and size within `max`.
absl::Status AddrAndSize(const Words& w, uint64_t max, QtestCommand* c) {
  QTEST_TRY(w.U64(1, "address", &c->addr));
  QTEST_TRY(w.U64(2, "size", &c->value));
  if (c->value > max) {
    return Err(absl::StrCat(w[0], ": size ", w[2], " too large (at most ", max,
                            " bytes)"));
  }
  if (c->value != 0 && c->addr + (c->value - 1) < c->addr) {
    return Err(absl::StrCat(w[0], ": address + size wraps past 2^64"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QtestCommand> ParseQtestLine(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  QtestCommand c;
  if (line.empty()) return c;  // kNone
  Words w(line);
  absl::string_view cmd = w[0];

  if ((cmd == "outb" || cmd == "outw" || cmd == "outl" || cmd == "inb" ||
       cmd == "inw" || cmd == "inl")) {
    const bool out = cmd[0] == 'o';
    c.op = out ? QtestOp::kOut : QtestOp::kIn;
    c.size = WidthOf(cmd.back());
    QTEST_TRY(w.Need(out ? 2 : 1));
    QTEST_TRY(w.U64(1, "port", &c.addr));
    if (c.addr > 0xffff) return Err(absl::StrCat(cmd, ": port above 0xffff"));
    if (out) QTEST_TRY(w.U64(2, "value", &c.value));
    return c;
  }
  if ((cmd.size() == 6 && cmd.substr(0, 5) == "write" &&
       WidthOf(cmd[5]) != 0) ||
      (cmd.size() == 5 && cmd.substr(0, 4) == "read" && WidthOf(cmd[4]) != 0)) {
    const bool write = cmd[0] == 'w';
    c.op = write ? QtestOp::kWrite : QtestOp::kRead;
    c.size = WidthOf(cmd.back());
    QTEST_TRY(w.Need(write ? 2 : 1));
    QTEST_TRY(w.U64(1, "address", &c.addr));
    if (c.addr + (c.size - 1) < c.addr) {
      return Err(absl::StrCat(cmd, ": address + size wraps past 2^64"));
    }
    if (write) QTEST_TRY(w.U64(2, "value", &c.value));
    return c;
  }
  if (cmd == "read" || cmd == "b64read") {
    c.op = cmd == "read" ? QtestOp::kBufRead : QtestOp::kB64Read;
    QTEST_TRY(w.Need(2));
    QTEST_TRY(AddrAndSize(w, kMaxReadSize, &c));
    if (c.value == 0) return Err(absl::StrCat(cmd, ": size must be > 0"));
    return c;
  }
  if (cmd == "write") {
    c.op = QtestOp::kBufWrite;
    QTEST_TRY(w.Need(3));
    QTEST_TRY(AddrAndSize(w, kMaxFillSize, &c));
    absl::string_view hex = w[3];
    if (hex.size() < 3) return Err("invalid argument size");
    if (hex.substr(0, 2) != "0x" && hex.substr(0, 2) != "0X") {
      return Err("write: data must start with 0x");
    }
    hex.remove_prefix(2);
    if (hex.size() % 2 != 0) return Err("write: odd number of hex digits");
    const size_t n = std::min<uint64_t>(hex.size() / 2, c.value);
    c.data.resize(n);
    for (size_t i = 0; i < n; ++i) {
      int hi = HexNibble(hex[2 * i]), lo = HexNibble(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) return Err("write: invalid hex digit");
      c.data[i] = static_cast<char>(hi << 4 | lo);
    }
    return c;
  }
  if (cmd == "b64write") {
    c.op = QtestOp::kB64Write;
    QTEST_TRY(w.Need(3));
    QTEST_TRY(AddrAndSize(w, kMaxFillSize, &c));
    if (!absl::Base64Unescape(w[3], &c.data)) {
      return Err("b64write: invalid base64 data");
    }
    return c;
  }
  if (cmd == "memset") {
    c.op = QtestOp::kMemset;
    QTEST_TRY(w.Need(3));
    QTEST_TRY(AddrAndSize(w, kMaxFillSize, &c));
    uint64_t pattern = 0;
    QTEST_TRY(w.U64(3, "pattern", &pattern));
    c.data.assign(1, static_cast<char>(pattern));
    return c;
  }
  if (cmd == "endianness") {
    c.op = QtestOp::kEndianness;
    return c;
  }
  if (cmd == "clock_step" || cmd == "clock_set") {
    c.op = cmd == "clock_step" ? QtestOp::kClockStep : QtestOp::kClockSet;
    if (c.op == QtestOp::kClockSet) QTEST_TRY(w.Need(1));
    c.has_value = w.size() > 1;
    if (c.has_value) {
      int64_t ns = 0;
      if (!ParseI64(w[1], &ns) || ns < 0) {
        return Err(absl::StrCat(cmd, ": invalid time '", w[1], "'"));
      }
      c.value = static_cast<uint64_t>(ns);
    }
    return c;
  }
  if (cmd == "irq_intercept_in" || cmd == "irq_intercept_out") {
    c.op = cmd == "irq_intercept_in" ? QtestOp::kIrqInterceptIn
                                     : QtestOp::kIrqInterceptOut;
    QTEST_TRY(w.Need(1));
    c.path = std::string(w[1]);
    if (w.size() > 2) c.name = std::string(w[2]);
    return c;
  }
  if (cmd == "set_irq_in") {
    c.op = QtestOp::kSetIrqIn;
    QTEST_TRY(w.Need(4));
    c.path = std::string(w[1]);
    c.name = std::string(w[2]);
    QTEST_TRY(w.U64(3, "irq number", &c.value));
    if (!ParseI64(w[4], &c.level)) {
      return Err(absl::StrCat("set_irq_in: invalid level '", w[4], "'"));
    }
    return c;
  }
  return absl::NotFoundError(absl::StrCat("Unknown command '", cmd, "'"));
}

std::string QtestErrorReply(const absl::Status& status) {
  return absl::StrCat(
      status.code() == absl::StatusCode::kNotFound ? "FAIL " : "ERR ",
      status.message());
}

}  // namespace viommu::system
