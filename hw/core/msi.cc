// The MSI window: records interrupt messages per requester id.
#include "viommu/hw/core/msi.h"

namespace viommu::hw {

using memory::MemTxAttrs;
using memory::MemTxResult;

uint64_t MsiController::Count(std::optional<uint16_t> rid) const {
  auto it = sources_.find(KeyOf(rid));
  return it == sources_.end() ? 0 : it->second.count;
}

std::optional<MsiMessage> MsiController::Last(
    std::optional<uint16_t> rid) const {
  auto it = sources_.find(KeyOf(rid));
  if (it == sources_.end()) return std::nullopt;
  return it->second.last;
}

void MsiController::Clear() {
  sources_.clear();
  total_ = 0;
}

MemTxResult MsiController::Read(uint64_t /*offset*/, uint64_t* value,
                                unsigned /*size*/, MemTxAttrs /*attrs*/) {
  *value = 0;
  return MemTxResult::Ok();
}

MemTxResult MsiController::Write(uint64_t offset, uint64_t value, unsigned size,
                                 MemTxAttrs attrs) {
  if (size != 4) return MemTxResult::Ok();  // QEMU: ignored
  MsiMessage msg;
  msg.address = kMsiWindowBase + offset;
  msg.data = static_cast<uint32_t>(value);
  if (!attrs.unspecified && attrs.has_requester_id) {
    msg.requester_id = attrs.requester_id;
  }
  Deliver(msg);
  return MemTxResult::Ok();
}

void MsiController::Deliver(const MsiMessage& msg) {
  Source& src = sources_[KeyOf(msg.requester_id)];
  ++src.count;
  src.last = msg;
  ++total_;
  if (observer_) observer_(msg);
}

}  // namespace viommu::hw
