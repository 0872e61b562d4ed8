#include "viommu/system/qmp/qmp_json_streamer.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace viommu::system {
namespace {

using TokenType = QmpJsonStreamer::TokenType;

// QEMU formats the parser's message into a 1024-byte buffer first, so
// `what` keeps at most 1023 bytes (a 64 KiB keyword is cut, closing quote
// and all; measured on 7.2).
constexpr size_t kParseMessageMax = 1023;

[[nodiscard]] absl::Status ParseError(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("JSON parse error, ", what.substr(0, kParseMessageMax)));
}

bool IsDigit(uint8_t c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at text[at..at+3], or -1.
int32_t Hex4(absl::string_view text, size_t at) {
  if (at + 4 > text.size()) return -1;
  int32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    int h = HexValue(text[at + i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence at text[at] (modified UTF-8:
// C0 80 stands for U+0000), or 0.
size_t Utf8SequenceLength(absl::string_view text, size_t at) {
  auto byte = [&](size_t i) -> uint8_t {
    return at + i < text.size() ? static_cast<uint8_t>(text[at + i]) : 0;
  };
  auto cont = [&](size_t i) { return (byte(i) & 0xC0) == 0x80; };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 == 0xC0) return byte(1) == 0x80 ? 2 : 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (b0 == 0xED && byte(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && byte(1) >= 0x90) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

// A string token (with its quotes) decoded as QEMU's parser decodes it.
[[nodiscard]] absl::StatusOr<std::string> DecodeString(
    absl::string_view token) {
  std::string out;
  const absl::string_view body = token.substr(1, token.size() - 2);
  for (size_t i = 0; i < body.size();) {
    const uint8_t c = static_cast<uint8_t>(body[i]);
    if (c != '\\') {
      if (c == 0xC0 && i + 1 < body.size() &&
          static_cast<uint8_t>(body[i + 1]) == 0x80) {
        out.push_back('\0');
        i += 2;
        continue;
      }
      const size_t len = Utf8SequenceLength(body, i);
      if (len == 0) return ParseError("invalid UTF-8 sequence in string");
      out.append(body.data() + i, len);
      i += len;
      continue;
    }
    const char e = i + 1 < body.size() ? body[i + 1] : '\0';
    switch (e) {
      case '"': case '\'': case '\\': case '/':
        out.push_back(e);
        i += 2;
        continue;
      case 'b': out.push_back('\b'); i += 2; continue;
      case 'f': out.push_back('\f'); i += 2; continue;
      case 'n': out.push_back('\n'); i += 2; continue;
      case 'r': out.push_back('\r'); i += 2; continue;
      case 't': out.push_back('\t'); i += 2; continue;
      case 'u': break;
      default:
        return ParseError("invalid escape sequence in string");
    }
    // \uXXXX, a high surrogate only with a low one after it.
    int32_t cp = Hex4(body, i + 2);
    size_t used = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 7 < body.size() &&
        body[i + 6] == '\\' && body[i + 7] == 'u') {
      const int32_t low = Hex4(body, i + 8);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        used = 12;
      }
    }
    if (cp < 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
      // QEMU quotes six bytes of the source from the backslash (the token
      // ends with its closing quote).
      return ParseError(absl::StrCat(token.substr(1 + i, 6),
                                     " is not a valid Unicode character"));
    }
    AppendUtf8(static_cast<uint32_t>(cp), &out);
    i += used;
  }
  return out;
}

// `s` (UTF-8) as a standard JSON string for json-glib.
void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char ch : s) {
    const uint8_t c = static_cast<uint8_t>(ch);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (c < 0x20) {
      absl::StrAppendFormat(out, "\\u%04x", c);
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

}  // namespace

absl::StatusOr<std::string> QmpJsonStreamer::Parse(
    const std::vector<Token>& tokens) {
  // QEMU's recursive descent with an explicit stack (nesting is bounded by
  // the streamer, but no recursion at all is simpler to trust). The first
  // error found is the answer, as in QEMU.
  struct Frame {
    bool object;
    bool want_key = true;  // objects: the next value is a key
    std::string key;
    std::set<std::string> keys;
  };
  std::vector<Frame> stack;
  std::string out;
  const size_t n = tokens.size();
  size_t pos = 0;
  for (;;) {
    // A value starts at `pos`.
    if (pos == n) return ParseError("premature EOI");
    const Token& t = tokens[pos];
    bool value_is_string = false;
    std::string value_string;
    switch (t.type) {
      case TokenType::kLCurly:
      case TokenType::kLSquare: {
        const bool object = t.type == TokenType::kLCurly;
        out.push_back(object ? '{' : '[');
        ++pos;
        if (pos == n) return ParseError("premature EOI");
        if (tokens[pos].type ==
            (object ? TokenType::kRCurly : TokenType::kRSquare)) {
          out.push_back(object ? '}' : ']');
          ++pos;
          break;  // an empty container: a complete value
        }
        stack.push_back(Frame{.object = object});
        continue;  // its first element (or key) is a value
      }
      case TokenType::kString: {
        absl::StatusOr<std::string> s = DecodeString(t.text);
        if (!s.ok()) return s.status();
        AppendJsonString(*s, &out);
        value_is_string = true;
        value_string = *std::move(s);
        ++pos;
        break;
      }
      case TokenType::kInteger:
      case TokenType::kFloat:
        out += t.text;
        ++pos;
        break;
      case TokenType::kKeyword:
        if (t.text != "true" && t.text != "false" && t.text != "null") {
          return ParseError(absl::StrCat("invalid keyword '", t.text, "'"));
        }
        out += t.text;
        ++pos;
        break;
      default:
        return ParseError("expecting value");
    }
    // A value is complete: close the containers it completes.
    for (;;) {
      if (stack.empty()) return out;
      Frame& f = stack.back();
      if (f.object && f.want_key) {
        if (!value_is_string) {
          return ParseError("key is not a string in object");
        }
        f.key = std::move(value_string);
        if (pos == n) return ParseError("premature EOI");
        if (tokens[pos++].type != TokenType::kColon) {
          return ParseError("missing : in object pair");
        }
        out.push_back(':');
        f.want_key = false;
        break;
      }
      if (f.object && !f.keys.insert(f.key).second) {
        return ParseError("duplicate key");
      }
      if (pos == n) return ParseError("premature EOI");
      const TokenType sep = tokens[pos++].type;
      if (sep == (f.object ? TokenType::kRCurly : TokenType::kRSquare)) {
        out.push_back(f.object ? '}' : ']');
        stack.pop_back();
        value_is_string = false;
        continue;
      }
      if (sep != TokenType::kComma) {
        return ParseError(f.object ? "expected separator in dict"
                                   : "expected separator in list");
      }
      out.push_back(',');
      f.want_key = f.object;
      break;
    }
  }
}

void QmpJsonStreamer::Feed(absl::string_view bytes, const EmitFn& emit) {
  for (char ch : bytes) {
    const uint8_t c = static_cast<uint8_t>(ch);
    while (!Step(c, emit)) {
    }
  }
}

void QmpJsonStreamer::Append(uint8_t c) {
  if (token_.size() < kMaxTokenSize) {
    token_.push_back(static_cast<char>(c));
  } else {
    token_overflow_ = true;  // lexed to its end, reported as too large
  }
}

bool QmpJsonStreamer::Step(uint8_t c, const EmitFn& emit) {
  switch (state_) {
    case State::kStart:
      switch (c) {
        case ' ': case '\t': case '\r': case '\n':
          return true;
        case '"': Append(c); state_ = State::kDqString; return true;
        case '\'': Append(c); state_ = State::kSqString; return true;
        case '-': Append(c); state_ = State::kSign; return true;
        case '0': Append(c); state_ = State::kZero; return true;
        case '{': Append(c); EndToken(TokenType::kLCurly, emit); return true;
        case '}': Append(c); EndToken(TokenType::kRCurly, emit); return true;
        case '[': Append(c); EndToken(TokenType::kLSquare, emit); return true;
        case ']': Append(c); EndToken(TokenType::kRSquare, emit); return true;
        case ':': Append(c); EndToken(TokenType::kColon, emit); return true;
        case ',': Append(c); EndToken(TokenType::kComma, emit); return true;
        default:
          break;
      }
      Append(c);
      if (c >= '1' && c <= '9') {
        state_ = State::kDigits;
      } else if (c >= 'a' && c <= 'z') {
        state_ = State::kKeyword;
      } else {
        LexError(emit);
      }
      return true;
    case State::kKeyword:
      if (c >= 'a' && c <= 'z') {
        Append(c);
        return true;
      }
      EndToken(TokenType::kKeyword, emit);
      return false;
    case State::kSign:
      Append(c);
      if (c == '0') {
        state_ = State::kZero;
      } else if (c >= '1' && c <= '9') {
        state_ = State::kDigits;
      } else {
        LexError(emit);
      }
      return true;
    case State::kZero:
    case State::kDigits:
      if (IsDigit(c)) {
        Append(c);
        if (state_ == State::kZero) LexError(emit);  // no leading zeros
        return true;
      }
      if (c == '.' || c == 'e' || c == 'E') {
        Append(c);
        state_ = c == '.' ? State::kMantissa : State::kExp;
        return true;
      }
      EndToken(TokenType::kInteger, emit);
      return false;
    case State::kMantissa:
    case State::kExpSign:
      Append(c);
      if (IsDigit(c)) {
        state_ = state_ == State::kMantissa ? State::kMantissaDigits
                                            : State::kExpDigits;
      } else {
        LexError(emit);
      }
      return true;
    case State::kMantissaDigits:
    case State::kExpDigits:
      if (IsDigit(c)) {
        Append(c);
        return true;
      }
      if (state_ == State::kMantissaDigits && (c == 'e' || c == 'E')) {
        Append(c);
        state_ = State::kExp;
        return true;
      }
      EndToken(TokenType::kFloat, emit);
      return false;
    case State::kExp:
      Append(c);
      if (IsDigit(c)) {
        state_ = State::kExpDigits;
      } else if (c == '+' || c == '-') {
        state_ = State::kExpSign;
      } else {
        LexError(emit);
      }
      return true;
    case State::kDqString:
    case State::kSqString: {
      Append(c);
      const bool dq = state_ == State::kDqString;
      if (c == (dq ? '"' : '\'')) {
        EndToken(TokenType::kString, emit);
      } else if (c == '\\') {
        state_ = dq ? State::kDqEscape : State::kSqEscape;
      } else if (c < 0x20 || c >= 0xFE) {
        LexError(emit);
      }
      return true;
    }
    case State::kDqEscape:
    case State::kSqEscape:
      Append(c);
      if (c < 0x20 || c >= 0xFE) {
        LexError(emit);
      } else {
        state_ = state_ == State::kDqEscape ? State::kDqString
                                            : State::kSqString;
      }
      return true;
    case State::kRecovery:
      if ((c < 0x20 && c != '\t') || c == '{' || c == '}' || c == '[' ||
          c == ']' || c >= 0xFE) {
        state_ = State::kStart;
        return false;
      }
      return true;
  }
  return true;
}

void QmpJsonStreamer::LexError(const EmitFn& emit) {
  // QEMU prints the token with %s: it ends at a NUL byte.
  std::string desc =
      token_overflow_
          ? std::string("JSON token size limit exceeded")
          : absl::StrCat("JSON parse error, stray '",
                         absl::string_view(token_.c_str()), "'");
  token_.clear();
  token_overflow_ = false;
  state_ = State::kRecovery;
  Fail(desc, emit);
}

void QmpJsonStreamer::Fail(absl::string_view desc, const EmitFn& emit) {
  ResetMessage();
  emit(absl::InvalidArgumentError(desc));
}

void QmpJsonStreamer::ResetMessage() {
  if (tokens_.capacity() > 4096) {
    std::vector<Token>().swap(tokens_);  // give a big message's memory back
  } else {
    tokens_.clear();
  }
  token_size_ = 0;
  braces_ = 0;
  brackets_ = 0;
}

void QmpJsonStreamer::EndToken(TokenType type, const EmitFn& emit) {
  std::string text;
  text.swap(token_);
  const bool overflow = token_overflow_;
  token_overflow_ = false;
  state_ = State::kStart;
  switch (type) {
    case TokenType::kLCurly: ++braces_; break;
    case TokenType::kRCurly: --braces_; break;
    case TokenType::kLSquare: ++brackets_; break;
    case TokenType::kRSquare: --brackets_; break;
    default: break;
  }
  if (overflow || token_size_ + text.size() + 1 > kMaxTokenSize) {
    Fail("JSON token size limit exceeded", emit);
    return;
  }
  if (tokens_.size() + 1 > kMaxTokenCount) {
    Fail("JSON token count limit exceeded", emit);
    return;
  }
  if (braces_ + brackets_ > kMaxNesting) {
    Fail("JSON nesting depth limit exceeded", emit);
    return;
  }
  token_size_ += text.size();
  tokens_.push_back(Token{type, std::move(text)});
  if ((braces_ > 0 || brackets_ > 0) && braces_ >= 0 && brackets_ >= 0) {
    return;  // the message goes on
  }
  absl::StatusOr<std::string> message = Parse(tokens_);
  ResetMessage();
  emit(message);
}

}  // namespace viommu::system
