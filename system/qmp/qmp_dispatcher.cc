#include "viommu/system/qmp/qmp_dispatcher.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "viommu/util/trace.h"

namespace viommu::system {
namespace {

// json-glib objects owned for one scope.
struct GObjectDeleter {
  void operator()(gpointer p) const { g_object_unref(p); }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectDeleter>;

std::string NodeToString(JsonNode* node) {
  GObjectPtr<JsonGenerator> gen(json_generator_new());
  json_generator_set_root(gen.get(), node);
  gchar* text = json_generator_to_data(gen.get(), nullptr);
  std::string out(text);
  g_free(text);
  return out;
}

// A command's "id" as QEMU echoes it: a double as "%.17g" (QEMU 7.2's
// qnum_to_string: 1.5e3 is 1500, 0.1 is 0.10000000000000001, and one
// beyond the double range is inf or -inf, which is not JSON: QEMU 7.2 and
// 10.0 send exactly that, docs/qmp.md); anything else as json-glib writes
// it.
std::string IdToString(JsonNode* id) {
  if (JSON_NODE_HOLDS_VALUE(id) &&
      json_node_get_value_type(id) == G_TYPE_DOUBLE) {
    return absl::StrFormat("%.17g", json_node_get_double(id));
  }
  return NodeToString(id);
}

// `s` as QEMU's JSON writer quotes a string: printable ASCII as is, \b \f
// \n \r \t, every other character as \uXXXX (upper-case hex, surrogate
// pairs above U+FFFF), bytes that are not UTF-8 as \uFFFD.
void AppendQemuJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0x80) {
      len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
      if (len == 0 || i + len > s.size()) {
        len = 1;
        cp = 0xFFFD;
      } else {
        const uint32_t mins[] = {0, 0, 0x80, 0x800, 0x10000};
        cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; ++k) {
          const uint8_t b = static_cast<uint8_t>(s[i + k]);
          if ((b & 0xC0) != 0x80) {
            cp = 0xFFFD;
            len = 1;
            break;
          }
          cp = (cp << 6) | (b & 0x3F);
        }
        if (len > 1 && (cp < mins[len] || cp > 0x10FFFF ||
                        (cp >= 0xD800 && cp <= 0xDFFF))) {
          cp = 0xFFFD;
          len = 1;
        }
      }
    }
    i += len;
    switch (cp) {
      case '"':
        *out += "\\\"";
        continue;
      case '\\':
        *out += "\\\\";
        continue;
      case '\b':
        *out += "\\b";
        continue;
      case '\f':
        *out += "\\f";
        continue;
      case '\n':
        *out += "\\n";
        continue;
      case '\r':
        *out += "\\r";
        continue;
      case '\t':
        *out += "\\t";
        continue;
      default:
        break;
    }
    if (cp >= 0x20 && cp < 0x7F) {
      out->push_back(static_cast<char>(cp));
    } else if (cp > 0xFFFF) {
      cp -= 0x10000;
      absl::StrAppendFormat(out, "\\u%04X\\u%04X", 0xD800 + (cp >> 10),
                            0xDC00 + (cp & 0x3FF));
    } else {
      absl::StrAppendFormat(out, "\\u%04X", cp);
    }
  }
  out->push_back('"');
}

}  // namespace

QmpValue QmpValue::EmptyObject() {
  JsonNode* n = json_node_new(JSON_NODE_OBJECT);
  JsonObject* o = json_object_new();
  json_node_take_object(n, o);
  return QmpValue(n);
}

absl::StatusOr<QmpValue> QmpValue::Parse(absl::string_view json) {
  GObjectPtr<JsonParser> parser(json_parser_new());
  GError* error = nullptr;
  if (!json_parser_load_from_data(parser.get(), json.data(),
                                  static_cast<gssize>(json.size()), &error)) {
    std::string msg = error != nullptr ? error->message : "parse error";
    g_clear_error(&error);
    return absl::InvalidArgumentError(absl::StrCat("JSON parse error, ", msg));
  }
  JsonNode* root = json_parser_get_root(parser.get());
  if (root == nullptr)
    return absl::InvalidArgumentError("JSON parse error, empty input");
  return QmpValue(json_node_copy(root));
}

absl::StatusOr<QmpValue> QmpValue::FromJsonText(std::string json) {
  absl::StatusOr<QmpValue> v = Parse(json);
  if (v.ok()) v->text_ = std::move(json);
  return v;
}

std::string QmpValue::ToString() const {
  if (!text_.empty()) return text_;
  return node_ == nullptr ? "null" : NodeToString(node_);
}

bool QmpArgs::Has(const char* name) const {
  return args_ != nullptr && json_object_has_member(args_, name);
}

absl::StatusOr<std::string> QmpArgs::GetString(const char* name) const {
  if (!Has(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Parameter '", name, "' is missing"));
  }
  JsonNode* n = json_object_get_member(args_, name);
  if (!JSON_NODE_HOLDS_VALUE(n) ||
      json_node_get_value_type(n) != G_TYPE_STRING) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Invalid parameter type for '", name, "', expected: string"));
  }
  return std::string(json_node_get_string(n));
}

std::map<std::string, std::string> QmpArgs::AsStringMap() const {
  std::map<std::string, std::string> out;
  if (args_ == nullptr) return out;
  GList* members = json_object_get_members(args_);
  for (GList* m = members; m != nullptr; m = m->next) {
    const char* key = static_cast<const char*>(m->data);
    JsonNode* n = json_object_get_member(args_, key);
    if (!JSON_NODE_HOLDS_VALUE(n)) {
      out[key] = NodeToString(n);
      continue;
    }
    GType t = json_node_get_value_type(n);
    if (t == G_TYPE_STRING) {
      out[key] = json_node_get_string(n);
    } else if (t == G_TYPE_BOOLEAN) {
      out[key] = json_node_get_boolean(n) ? "on" : "off";
    } else if (t == G_TYPE_INT64) {
      out[key] = absl::StrCat(json_node_get_int(n));
    } else {
      out[key] = NodeToString(n);
    }
  }
  g_list_free(members);
  return out;
}

QmpDispatcher::QmpDispatcher() = default;

void QmpDispatcher::Register(std::string name, Handler handler) {
  handlers_[std::move(name)] = std::move(handler);
}

void QmpDispatcher::EmitEvent(absl::string_view name, const QmpValue& data) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  std::string json = absl::StrCat(
      "{\"timestamp\": {\"seconds\": ", us / 1000000,
      ", \"microseconds\": ", us % 1000000, "}, \"event\": \"", name, "\"",
      data.node() != nullptr ? absl::StrCat(", \"data\": ", data.ToString())
                             : "",
      "}");
  for (QmpSession* s : sessions_) {
    if (s->negotiated()) s->send_(json);
  }
}

QmpSession::QmpSession(QmpDispatcher* dispatcher, SendFn send)
    : dispatcher_(dispatcher), send_(std::move(send)) {
  dispatcher_->sessions_.insert(this);
}

QmpSession::~QmpSession() { dispatcher_->sessions_.erase(this); }

void QmpSession::Greet() {
  send_(
      "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
      "\"major\": 7}, \"package\": \"viommu\"}, \"capabilities\": [\"oob\"]}}");
}

void QmpSession::SendError(const char* cls, absl::string_view desc,
                           JsonNode* id) {
  std::string out =
      absl::StrCat("{\"error\": {\"class\": \"", cls, "\", \"desc\": ");
  AppendQemuJsonString(desc, &out);
  out += "}";
  if (id != nullptr) absl::StrAppend(&out, ", \"id\": ", IdToString(id));
  out += "}";
  send_(out);
}

void QmpSession::SendReturn(const QmpValue& value, JsonNode* id) {
  std::string out = absl::StrCat("{\"return\": ", value.ToString());
  if (id != nullptr) absl::StrAppend(&out, ", \"id\": ", IdToString(id));
  out += "}";
  send_(out);
}

void QmpSession::HandleMessage(absl::string_view json) {
  absl::StatusOr<QmpValue> msg = QmpValue::Parse(json);
  if (!msg.ok()) {
    SendError("GenericError", msg.status().message(), nullptr);
    return;
  }
  if (!JSON_NODE_HOLDS_OBJECT(msg->node())) {
    SendError("GenericError", "QMP input must be a JSON object", nullptr);
    return;
  }
  JsonObject* obj = json_node_get_object(msg->node());
  JsonNode* id = json_object_get_member(obj, "id");
  JsonNode* exec = json_object_get_member(obj, "execute");
  if (exec == nullptr) {
    SendError("GenericError", "QMP input lacks member 'execute'", id);
    return;
  }
  if (!JSON_NODE_HOLDS_VALUE(exec) ||
      json_node_get_value_type(exec) != G_TYPE_STRING) {
    SendError("GenericError", "QMP input member 'execute' must be a string",
              id);
    return;
  }
  JsonNode* args = json_object_get_member(obj, "arguments");
  if (args != nullptr && !JSON_NODE_HOLDS_OBJECT(args)) {
    SendError("GenericError", "QMP input member 'arguments' must be an object",
              id);
    return;
  }
  const std::string name = json_node_get_string(exec);
  if (name == "qmp_capabilities") {
    if (negotiated_) {
      SendError("CommandNotFound",
                "Capabilities negotiation is already complete, command "
                "ignored",
                id);
      return;
    }
    negotiated_ = true;
    SendReturn(QmpValue::EmptyObject(), id);
    return;
  }
  if (!negotiated_) {
    SendError("CommandNotFound",
              "Expecting capabilities negotiation with 'qmp_capabilities'", id);
    return;
  }
  VIOMMU_TRACE(qmp_command, name);
  auto it = dispatcher_->handlers_.find(name);
  if (it == dispatcher_->handlers_.end()) {
    SendError("CommandNotFound",
              absl::StrCat("The command ", name, " has not been found"), id);
    return;
  }
  absl::StatusOr<QmpValue> result = it->second(
      QmpArgs(args != nullptr ? json_node_get_object(args) : nullptr));
  if (!result.ok()) {
    SendError(result.status().code() == absl::StatusCode::kNotFound &&
                      absl::StartsWith(result.status().message(), "Device '")
                  ? "DeviceNotFound"
                  : "GenericError",
              result.status().message(), id);
    return;
  }
  SendReturn(*result, id);
}

void QmpSession::Feed(absl::string_view bytes) {
  streamer_.Feed(bytes, [this](const absl::StatusOr<std::string>& message) {
    if (message.ok()) {
      HandleMessage(*message);
    } else {
      SendError("GenericError", message.status().message(), nullptr);
    }
  });
}

}  // namespace viommu::system
