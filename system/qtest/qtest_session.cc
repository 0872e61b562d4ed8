#include "viommu/system/qtest/qtest_session.h"

#include <glib.h>

#include <cinttypes>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "viommu/util/le_bytes.h"
#include "viommu/util/trace.h"

namespace viommu::system {
namespace {

constexpr size_t kChunk = 64 * 1024;          // memory accesses
constexpr size_t kB64Chunk = 48 * 1024;       // multiple of 3
constexpr size_t kStreamThreshold = 1 << 20;  // hand over long answers

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kB64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Appends `v` in lower-case hex with at least `min_digits` digits.
void AppendHex(std::string* out, uint64_t v, int min_digits) {
  char buf[16];
  int n = 0;
  do {
    buf[15 - n++] = kHexDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  while (n < min_digits) buf[15 - n++] = '0';
  out->append(buf + 16 - n, static_cast<size_t>(n));
}

void AppendHexBytes(std::string* out, const uint8_t* p, size_t n) {
  const size_t at = out->size();
  out->resize(at + 2 * n);
  char* d = out->data() + at;
  for (size_t i = 0; i < n; ++i) {
    d[2 * i] = kHexDigits[p[i] >> 4];
    d[2 * i + 1] = kHexDigits[p[i] & 0xf];
  }
}

// Standard base64 with '=' padding (as g_base64_encode).
void AppendBase64(std::string* out, const uint8_t* p, size_t n) {
  const size_t at = out->size();
  out->resize(at + (n + 2) / 3 * 4);
  char* d = out->data() + at;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v =
        uint32_t{p[i]} << 16 | uint32_t{p[i + 1]} << 8 | p[i + 2];
    *d++ = kB64Alphabet[v >> 18];
    *d++ = kB64Alphabet[(v >> 12) & 63];
    *d++ = kB64Alphabet[(v >> 6) & 63];
    *d++ = kB64Alphabet[v & 63];
  }
  if (i < n) {
    const uint32_t v =
        uint32_t{p[i]} << 16 | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0);
    *d++ = kB64Alphabet[v >> 18];
    *d++ = kB64Alphabet[(v >> 12) & 63];
    *d++ = i + 1 < n ? kB64Alphabet[(v >> 6) & 63] : '=';
    *d++ = '=';
  }
}

int Nibble(char c) {
  if (c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;  // validated by the parser
}

constexpr char kNoDeadline[] =
    "FAIL cannot advance clock to the next deadline because there is no "
    "pending deadline\n";
constexpr char kNoAdvance[] = "FAIL could not advance time\n";

}  // namespace

QtestSession::QtestSession(QtestTarget* target, EmitFn emit)
    : QtestSession(target, std::move(emit), Options()) {}

QtestSession::QtestSession(QtestTarget* target, EmitFn emit, Options options)
    : target_(target),
      emit_(std::move(emit)),
      options_(options),
      alive_(std::make_shared<QtestSession*>(this)) {}

QtestSession::~QtestSession() { *alive_ = nullptr; }

void QtestSession::Run(absl::string_view line, std::string* out) {
  RunImpl(line, out, /*stream=*/true);
}

std::string QtestSession::Execute(absl::string_view line) {
  std::string out;
  RunImpl(line, &out, /*stream=*/false);
  return out;
}

const std::string& QtestSession::HandleLine(absl::string_view line) {
  scratch_.clear();
  answer_.clear();
  RunImpl(line, &scratch_, /*stream=*/false);
  size_t start = 0;
  while (start < scratch_.size()) {
    const size_t nl = scratch_.find('\n', start);  // every line ends in '\n'
    if (emit_) emit_(absl::string_view(scratch_).substr(start, nl + 1 - start));
    if (nl + 1 == scratch_.size()) answer_.assign(scratch_, start, nl - start);
    start = nl + 1;
  }
  return answer_;
}

void QtestSession::RunImpl(absl::string_view line, std::string* out,
                           bool stream) {
  absl::StatusOr<QtestCommand> c = ParseQtestLine(line);
  if (!c.ok()) {
    absl::StrAppend(out, QtestErrorReply(c.status()), "\n");
    return;
  }
  if (c->op == QtestOp::kNone) return;
  VIOMMU_TRACE(qtest_command, line);
  sink_ = out;
  streaming_ = stream && stream_flush_ != nullptr;
  Dispatch(*c, out);
  sink_ = nullptr;
  streaming_ = false;
}

void QtestSession::Dispatch(const QtestCommand& c, std::string* out) {
  switch (c.op) {
    case QtestOp::kNone:
      return;
    case QtestOp::kOut:
      target_->PortOut(static_cast<uint16_t>(c.addr),
                       static_cast<uint32_t>(c.value & AllOnes(c.size)),
                       c.size);
      out->append("OK\n");
      return;
    case QtestOp::kIn: {
      const uint32_t v = target_->PortIn(static_cast<uint16_t>(c.addr), c.size);
      out->append("OK 0x");
      AppendHex(out, v & AllOnes(c.size), 4);
      out->push_back('\n');
      return;
    }
    case QtestOp::kWrite: {
      uint8_t bytes[8];  // little-endian target
      StoreLe(bytes, c.value, c.size);
      target_->MemWrite(c.addr, bytes, c.size);
      out->append("OK\n");
      return;
    }
    case QtestOp::kRead: {
      uint8_t bytes[8] = {};
      target_->MemRead(c.addr, bytes, c.size);
      const uint64_t v = LoadLe(bytes, c.size);
      out->append("OK 0x");
      AppendHex(out, v, 16);
      out->push_back('\n');
      return;
    }
    case QtestOp::kBufRead:
    case QtestOp::kB64Read:
      if (c.value > options_.max_read_bytes) {
        absl::StrAppend(out, "ERR ",
                        c.op == QtestOp::kBufRead ? "read" : "b64read",
                        ": size ", c.value, " too large (at most ",
                        options_.max_read_bytes, " bytes)\n");
        return;
      }
      ReadBuffer(c, out);
      return;
    case QtestOp::kBufWrite:
    case QtestOp::kB64Write:
    case QtestOp::kMemset:
      if (c.value > options_.max_fill_bytes) {
        absl::StrAppend(out, "ERR ",
                        c.op == QtestOp::kBufWrite   ? "write"
                        : c.op == QtestOp::kB64Write ? "b64write"
                                                     : "memset",
                        ": size ", c.value, " too large (at most ",
                        options_.max_fill_bytes, " bytes)\n");
        return;
      }
      if (c.op == QtestOp::kBufWrite) {
        WriteBuffer(c);
      } else if (c.op == QtestOp::kB64Write) {
        B64Write(c);
      } else {
        Memset(c);
      }
      out->append("OK\n");
      return;
    case QtestOp::kEndianness:
      out->append("OK little\n");
      return;
    case QtestOp::kClockStep:
      ClockStep(c, out);
      return;
    case QtestOp::kClockSet: {
      const int64_t now = target_->ClockSet(c.ns);
      SawTime(now);
      absl::StrAppend(out, now == c.ns ? "OK " : "FAIL ", now, "\n");
      return;
    }
    case QtestOp::kIrqInterceptIn:
    case QtestOp::kIrqInterceptOut:
      Intercept(c, out);
      return;
    case QtestOp::kSetIrqIn: {
      absl::Status s = target_->SetIrqIn(c.path, c.name, c.addr, c.level);
      if (s.ok()) {
        out->append("OK\n");
      } else {
        absl::StrAppend(out, "FAIL ", s.message(), "\n");
      }
      return;
    }
    case QtestOp::kModuleLoad:
      out->append("FAIL\n");  // no loadable modules
      return;
  }
}

void QtestSession::ClockStep(const QtestCommand& c, std::string* out) {
  const int64_t old = target_->ClockNow().value_or(last_now_);
  int64_t now;
  if (!c.has_arg) {
    std::optional<int64_t> next = target_->ClockStepNext();
    if (!next.has_value()) {
      out->append(kNoDeadline);
      return;
    }
    now = *next;
  } else if (c.ns <= 0 || old > std::numeric_limits<int64_t>::max() - c.ns) {
    // QEMU advances to old + NS (wrapping), which runs the timers already
    // due and leaves the time as it is.
    now = target_->ClockStep(0);
  } else {
    now = target_->ClockStep(c.ns);
  }
  SawTime(now);
  if (now > old) {
    absl::StrAppend(out, "OK ", now, "\n");
  } else {
    out->append(kNoAdvance);
  }
}

void QtestSession::Intercept(const QtestCommand& c, std::string* out) {
  const bool in = c.op == QtestOp::kIrqInterceptIn;
  if (!target_->HasDevice(c.path)) {
    out->append("FAIL Unknown device\n");
    return;
  }
  if (in && c.has_arg) {
    out->append("FAIL Interception of named in-GPIOs not yet supported\n");
    return;
  }
  if (intercepted_) {
    out->append(c.path == intercepted_path_
                    ? "OK\n"
                    : "FAIL IRQ intercept already enabled\n");
    return;
  }
  absl::Status s;
  if (in) {
    std::shared_ptr<QtestSession*> alive = alive_;
    s = target_->InterceptIrqIn(c.path, [alive](int n, bool level) {
      if (*alive != nullptr) (*alive)->OnIrq(n, level);
    });
  } else {
    s = target_->InterceptIrqOut(c.path);
  }
  if (!s.ok()) {
    out->append(s.code() == absl::StatusCode::kNotFound
                    ? "FAIL Unknown device\n"
                    : "FAIL No intercepts installed\n");
    return;
  }
  intercepted_ = true;
  intercepted_path_.assign(c.path.data(), c.path.size());
  out->append("OK\n");
}

void QtestSession::OnIrq(int n, bool level) {
  if (n >= 0 && static_cast<size_t>(n) < irq_levels_.size()) {
    if (irq_levels_[n] == level) return;
    irq_levels_[n] = level;
  }
  char line[32];
  const int len = std::snprintf(line, sizeof(line), "IRQ %s %d\n",
                                level ? "raise" : "lower", n);
  const absl::string_view text(line, static_cast<size_t>(len));
  if (sink_ != nullptr) {
    sink_->append(text.data(), text.size());
  } else if (emit_) {
    emit_(text);
  }
}

void QtestSession::MaybeStreamFlush(std::string* out) {
  if (streaming_ && out->size() >= kStreamThreshold) stream_flush_(out);
}

void QtestSession::ReadBuffer(const QtestCommand& c, std::string* out) {
  const bool b64 = c.op == QtestOp::kB64Read;
  out->append(b64 ? "OK " : "OK 0x");
  if (!streaming_)
    out->reserve(out->size() + (b64 ? c.value / 3 * 4 + 4 : 2 * c.value) + 1);
  const size_t step = b64 ? kB64Chunk : kChunk;
  chunk_.resize(kChunk);
  for (uint64_t done = 0; done < c.value; done += step) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(step, c.value - done));
    target_->MemRead(c.addr + done, chunk_.data(), n);
    if (b64) {
      AppendBase64(out, chunk_.data(), n);
    } else {
      AppendHexBytes(out, chunk_.data(), n);
    }
    MaybeStreamFlush(out);
  }
  out->push_back('\n');
}

void QtestSession::WriteBuffer(const QtestCommand& c) {
  const uint64_t from_data = std::min<uint64_t>(c.data.size() / 2, c.value);
  chunk_.resize(kChunk);
  for (uint64_t done = 0; done < from_data; done += kChunk) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(kChunk, from_data - done));
    const char* hex = c.data.data() + 2 * done;
    for (size_t i = 0; i < n; ++i) {
      chunk_[i] = static_cast<uint8_t>(Nibble(hex[2 * i]) << 4 |
                                       Nibble(hex[2 * i + 1]));
    }
    target_->MemWrite(c.addr + done, chunk_.data(), n);
  }
  if (from_data == c.value) return;
  std::memset(chunk_.data(), 0, kChunk);
  for (uint64_t done = from_data; done < c.value; done += kChunk) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(kChunk, c.value - done));
    target_->MemWrite(c.addr + done, chunk_.data(), n);
  }
}

void QtestSession::B64Write(const QtestCommand& c) {
  // Decoded in pieces with GLib's decoder (QEMU uses g_base64_decode), so
  // padding and odd lengths decode exactly as there.
  chunk_.resize(kChunk);
  gint state = 0;
  guint save = 0;
  uint64_t decoded = 0;  // total decoded bytes
  for (size_t at = 0; at < c.data.size(); at += kB64Chunk) {
    const size_t n = std::min(kB64Chunk, c.data.size() - at);
    const size_t got = g_base64_decode_step(c.data.data() + at, n,
                                            chunk_.data(), &state, &save);
    if (decoded < c.value) {
      const size_t use =
          static_cast<size_t>(std::min<uint64_t>(got, c.value - decoded));
      target_->MemWrite(c.addr + decoded, chunk_.data(), use);
    }
    decoded += got;
  }
  if (decoded < c.value) {
    std::memset(chunk_.data(), 0, kChunk);
    for (uint64_t done = decoded; done < c.value; done += kChunk) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(kChunk, c.value - done));
      target_->MemWrite(c.addr + done, chunk_.data(), n);
    }
  }
  if (decoded != c.value && note_) {
    note_(absl::StrFormat("b64write: data length mismatch (told %d, found %d)",
                          c.value, decoded));
  }
}

void QtestSession::Memset(const QtestCommand& c) {
  if (c.value == 0) return;
  chunk_.resize(kChunk);
  std::memset(chunk_.data(), c.pattern, kChunk);
  for (uint64_t done = 0; done < c.value; done += kChunk) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(kChunk, c.value - done));
    target_->MemWrite(c.addr + done, chunk_.data(), n);
  }
}

}  // namespace viommu::system
