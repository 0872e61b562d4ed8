#include "hw/i386/ich9_reset_control.h"

namespace viommu::hw {
namespace {

constexpr uint64_t kResetControlOffset = 1;  // 0xcf9 - 0xcf8

bool IsResetControl(uint64_t offset, unsigned size) {
  return offset == kResetControlOffset && size == 1;
}

}  // namespace

void Ich9ResetControl::Write(uint8_t value) {
  if (value & kRstCpu) {
    value_ = 0;
    request_reset_();
    return;
  }
  value_ = value & (kSysRst | kFullRst);
}

memory::MemTxResult Q35ConfigPorts::Read(uint64_t offset, uint64_t* value,
                                         unsigned size,
                                         memory::MemTxAttrs attrs) {
  if (IsResetControl(offset, size)) {
    *value = reset_control_->Read();
    return memory::MemTxResult::Ok();
  }
  return config_->Read(offset, value, size, attrs);
}

memory::MemTxResult Q35ConfigPorts::Write(uint64_t offset, uint64_t value,
                                          unsigned size,
                                          memory::MemTxAttrs attrs) {
  if (IsResetControl(offset, size)) {
    reset_control_->Write(static_cast<uint8_t>(value));
    return memory::MemTxResult::Ok();
  }
  return config_->Write(offset, value, size, attrs);
}

}  // namespace viommu::hw
