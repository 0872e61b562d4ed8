// viommu/system/qmp/qmp_json_streamer.h — splits a QMP byte stream into
// JSON messages with QEMU 7.2's lexer and streamer semantics, so a hostile
// client gets QEMU's answers, one per message, in bounded memory.
//
//   QmpJsonStreamer streamer;
//   streamer.Feed(bytes, [&](const absl::StatusOr<std::string>& msg) {
//     if (msg.ok()) HandleJson(*msg);   // standard JSON, nesting <= 1024
//     else SendError(msg.status().message());
//   });
//
// Semantics (docs/qmp.md has the measured QEMU answers):
// - Tokens as QEMU lexes them: {}[]:, strings in double or single quotes,
//   numbers, lower-case keywords; whitespace between tokens is skipped.
// - A message ends when the brace and bracket counts (kept apart) are both
//   back to zero, or either goes negative (an unbalanced close), or with a
//   scalar at the top level. It is then parsed with QEMU's grammar and
//   error texts ("JSON parse error, expecting value", "invalid keyword
//   'x'", "duplicate key", ...); the first error wins.
// - A byte no token can start or continue is "JSON parse error, stray
//   'TOKEN'": the message so far is dropped and input is skipped until a
//   structural character ({}[]), an ASCII control other than tab (newline
//   included) or 0xFE/0xFF, where lexing restarts. One error per garbage run.
// - Limits (checked per token, before it is kept): nesting (braces plus
//   brackets) > 1024 is "JSON nesting depth limit exceeded", the message's
//   token bytes > 64 MiB "JSON token size limit exceeded", > 2 Mi tokens
//   "JSON token count limit exceeded". Each error drops the message so far
//   and the streamer starts afresh with the next token.
// - Memory is bounded: one token's text is never kept beyond 64 MiB (a
//   longer token is lexed to its end without being stored, then reported
//   as over the size limit).
//
// Threading: not thread-safe; one streamer per connection.
#ifndef VIOMMU_SYSTEM_QMP_QMP_JSON_STREAMER_H_
#define VIOMMU_SYSTEM_QMP_QMP_JSON_STREAMER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace viommu::system {

class QmpJsonStreamer {
 public:
  static constexpr int kMaxNesting = 1024;
  static constexpr size_t kMaxTokenSize = size_t{64} << 20;
  static constexpr size_t kMaxTokenCount = size_t{2} << 20;

  // Called once per message: the message re-encoded as standard JSON
  // (strings in double quotes, \u escapes for control characters), or a
  // kInvalidArgument status whose message is QEMU's error text.
  using EmitFn = std::function<void(const absl::StatusOr<std::string>&)>;

  // Lexes `bytes`; calls `emit` for every message or error completed by
  // them and keeps the unfinished rest for the next call. `emit` may not
  // call Feed on this streamer.
  void Feed(absl::string_view bytes, const EmitFn& emit);

  // Parses one message's tokens with QEMU's grammar (exposed for tests).
  // Errors: kInvalidArgument "JSON parse error, ...".
  enum class TokenType : uint8_t {
    kLCurly, kRCurly, kLSquare, kRSquare, kColon, kComma,
    kString, kInteger, kFloat, kKeyword,
  };
  struct Token {
    TokenType type;
    std::string text;  // as lexed (strings with their quotes)
  };
  [[nodiscard]] static absl::StatusOr<std::string> Parse(
      const std::vector<Token>& tokens);

 private:
  enum class State : uint8_t {
    kStart, kKeyword, kSign, kZero, kDigits, kMantissa, kMantissaDigits,
    kExp, kExpSign, kExpDigits, kDqString, kDqEscape, kSqString, kSqEscape,
    kRecovery,
  };
  // Handles one byte in the current state; false means it must be handled
  // again in the new state (QEMU's lookahead).
  bool Step(uint8_t c, const EmitFn& emit);
  void Append(uint8_t c);
  void EndToken(TokenType type, const EmitFn& emit);
  void LexError(const EmitFn& emit);
  void Fail(absl::string_view desc, const EmitFn& emit);
  void ResetMessage();

  State state_ = State::kStart;
  std::string token_;
  bool token_overflow_ = false;
  // The message so far.
  std::vector<Token> tokens_;
  size_t token_size_ = 0;
  int64_t braces_ = 0;
  int64_t brackets_ = 0;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QMP_QMP_JSON_STREAMER_H_
