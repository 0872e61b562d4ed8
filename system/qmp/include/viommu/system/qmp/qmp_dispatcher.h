// viommu/system/qmp/qmp_dispatcher.h — QEMU Machine Protocol commands:
// capability negotiation, dispatch to registered handlers, QMP error
// classes, and events (JSON via json-glib).
//
//   QmpDispatcher qmp;
//   qmp.Register("query-status", [](const QmpArgs&) -> absl::StatusOr<QmpValue>
//   {
//     return QmpValue::Parse(R"({"status": "running", "running": true})");
//   });
//   QmpSession s(&qmp, [](absl::string_view json) { Send(json); });
//   s.Greet();                                  // {"QMP": {...}}
//   s.HandleMessage(R"({"execute": "qmp_capabilities"})");
//
// Semantics (QEMU 7.2): a session must send `qmp_capabilities` first;
// anything else before it is CommandNotFound "Expecting capabilities
// negotiation with 'qmp_capabilities'". Unknown commands are
// CommandNotFound "The command X has not been found"; malformed input is a
// GenericError; handler errors are GenericError with the status message.
// "id" is echoed in the answer. Events reach negotiated sessions only.
//
// Threading: control context only.
#ifndef VIOMMU_SYSTEM_QMP_QMP_DISPATCHER_H_
#define VIOMMU_SYSTEM_QMP_QMP_DISPATCHER_H_

#include <json-glib/json-glib.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "viommu/system/qmp/qmp_json_streamer.h"

namespace viommu::system {

// An owned JSON value (a JsonNode reference).
class QmpValue {
 public:
  QmpValue() = default;
  explicit QmpValue(JsonNode* adopted) : node_(adopted) {}
  QmpValue(const QmpValue& o)
      : node_(o.node_ ? json_node_ref(o.node_) : nullptr), text_(o.text_) {}
  QmpValue& operator=(QmpValue o) {
    std::swap(node_, o.node_);
    std::swap(text_, o.text_);
    return *this;
  }
  ~QmpValue() {
    if (node_ != nullptr) json_node_unref(node_);
  }
  static QmpValue EmptyObject();
  // Errors: kInvalidArgument with json-glib's message.
  [[nodiscard]] static absl::StatusOr<QmpValue> Parse(absl::string_view json);
  // A value sent exactly as `json` (which must be valid JSON): json-glib
  // holds integers as int64, so unsigned 64-bit numbers above INT64_MAX
  // (addresses) survive only as text. node() is the parsed form, in which
  // such numbers wrap. Errors: Parse's.
  [[nodiscard]] static absl::StatusOr<QmpValue> FromJsonText(std::string json);
  JsonNode* node() const { return node_; }
  std::string ToString() const;

 private:
  JsonNode* node_ = nullptr;
  std::string text_;  // non-empty: the exact text to send
};

// A command's "arguments" object, with QEMU's parameter errors.
class QmpArgs {
 public:
  explicit QmpArgs(JsonObject* args) : args_(args) {}  // may be null
  bool Has(const char* name) const;
  // Errors: kInvalidArgument "Parameter 'x' is missing" / "Invalid
  // parameter type for 'x', expected: string".
  [[nodiscard]] absl::StatusOr<std::string> GetString(const char* name) const;
  // Every member as text (numbers and booleans as qdev properties take
  // them), for device_add.
  std::map<std::string, std::string> AsStringMap() const;

 private:
  JsonObject* args_;
};

class QmpDispatcher {
 public:
  using Handler = std::function<absl::StatusOr<QmpValue>(const QmpArgs&)>;

  QmpDispatcher();
  void Register(std::string name, Handler handler);

  // Queues `name` with `data` (an object, or null for none) to every
  // negotiated session.
  void EmitEvent(absl::string_view name, const QmpValue& data);

 private:
  friend class QmpSession;
  std::map<std::string, Handler, std::less<>> handlers_;
  std::set<class QmpSession*> sessions_;
};

// One client connection's protocol state.
class QmpSession {
 public:
  using SendFn = std::function<void(absl::string_view json_line)>;
  QmpSession(QmpDispatcher* dispatcher, SendFn send);
  ~QmpSession();
  QmpSession(const QmpSession&) = delete;
  QmpSession& operator=(const QmpSession&) = delete;

  void Greet();
  // Handles one complete JSON text; sends the answer.
  void HandleMessage(absl::string_view json);
  // Splits a byte stream into JSON messages as QEMU does (see
  // qmp_json_streamer.h) and handles each; a malformed message or garbage
  // run gets one GenericError with QEMU's text. Keeps a partial message for
  // the next call.
  void Feed(absl::string_view bytes);
  bool negotiated() const { return negotiated_; }

 private:
  friend class QmpDispatcher;
  void SendError(const char* cls, absl::string_view desc, JsonNode* id);
  void SendReturn(const QmpValue& value, JsonNode* id);

  QmpDispatcher* dispatcher_;
  SendFn send_;
  bool negotiated_ = false;
  QmpJsonStreamer streamer_;
};

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_QMP_QMP_DISPATCHER_H_
