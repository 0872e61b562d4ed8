// ModelHostDevice interrupts: VFIO_DEVICE_GET_IRQ_INFO / SET_IRQS for INTx
// and MSI, the INTx line (level, INTX_DISABLE, automask) and MSI messages,
// delivered to the HostIrqSink; EventfdIrqSink.
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

#include "vfio/host/model/host_pci_config.h"
#include "viommu/vfio/host/model/host_device.h"

namespace viommu::vfio::model {
namespace {

constexpr uint32_t kDataMask =
    uapi::kIrqSetDataNone | uapi::kIrqSetDataBool | uapi::kIrqSetDataEventfd;
constexpr uint32_t kActionMask = uapi::kIrqSetActionMask |
                                 uapi::kIrqSetActionUnmask |
                                 uapi::kIrqSetActionTrigger;

uint32_t IrqCount(uint32_t index) {
  return index == uapi::kPciIntxIrqIndex || index == uapi::kPciMsiIrqIndex ? 1
                                                                           : 0;
}

int32_t EventfdAt(const uint8_t* data, uint32_t i) {
  int32_t fd;
  std::memcpy(&fd, data + 4 * i, sizeof(fd));
  return fd;
}

}  // namespace

void EventfdIrqSink::Signal(uint32_t, uint32_t, int32_t eventfd) {
  const uint64_t one = 1;
  ssize_t rc = write(eventfd, &one, sizeof(one));
  (void)rc;
}

int ModelHostDevice::GetIrqInfo(uint32_t index, uapi::vfio_irq_info* out) {
  if (index >= uapi::kPciNumIrqs) return -EINVAL;
  out->count = IrqCount(index);
  out->flags = uapi::kIrqInfoEventfd;
  if (index == uapi::kPciIntxIrqIndex) {
    out->flags |= uapi::kIrqInfoMaskable | uapi::kIrqInfoAutomasked;
  } else {
    out->flags |= uapi::kIrqInfoNoresize;
  }
  return 0;
}

int ModelHostDevice::SetIrqs(const uapi::vfio_irq_set& set,
                             const uint8_t* data) {
  const uint32_t data_type = set.flags & kDataMask;
  const uint32_t action = set.flags & kActionMask;
  if ((set.flags & ~(kDataMask | kActionMask)) != 0 ||
      std::popcount(data_type) != 1 || std::popcount(action) != 1 ||
      set.index >= uapi::kPciNumIrqs || set.argsz < sizeof(set)) {
    return -EINVAL;
  }
  const uint64_t max = IrqCount(set.index);
  // count 0 is "all of them" and only means something with DATA_NONE.
  if (max == 0 || set.start >= max || uint64_t{set.start} + set.count > max ||
      (set.count == 0 && data_type != uapi::kIrqSetDataNone)) {
    return -EINVAL;
  }
  uint64_t need = 0;
  if (data_type == uapi::kIrqSetDataBool) need = set.count;
  if (data_type == uapi::kIrqSetDataEventfd) need = uint64_t{4} * set.count;
  if (set.argsz - sizeof(set) < need || (need > 0 && data == nullptr)) {
    return -EINVAL;
  }
  return set.index == uapi::kPciIntxIrqIndex ? SetIntxIrqs(set, data)
                                             : SetMsiIrqs(set, data);
}

// One vector (start 0, count 0 or 1).
int ModelHostDevice::SetIntxIrqs(const uapi::vfio_irq_set& set,
                                 const uint8_t* data) {
  const uint32_t data_type = set.flags & kDataMask;
  // DATA_BOOL acts only when the byte is non-zero; DATA_NONE always.
  const bool act = data_type != uapi::kIrqSetDataBool || data[0] != 0;
  if (set.flags & uapi::kIrqSetActionMask) {
    if (data_type == uapi::kIrqSetDataEventfd) return -EINVAL;
    if (act) intx_masked_ = true;
    return 0;
  }
  if (set.flags & uapi::kIrqSetActionUnmask) {
    if (data_type == uapi::kIrqSetDataEventfd) return -EINVAL;  // no irqfd
    if (act && intx_masked_) {
      intx_masked_ = false;
      if (intx_line_ && intx_enabled_) SignalIntx();
    }
    return 0;
  }
  // ACTION_TRIGGER.
  if (data_type == uapi::kIrqSetDataEventfd) {
    const int32_t fd = EventfdAt(data, 0);
    if (fd < 0) {
      intx_enabled_ = false;
      intx_fd_ = -1;
      return 0;
    }
    if (msi_enabled_) return -EINVAL;
    intx_enabled_ = true;
    intx_fd_ = fd;
    intx_masked_ = false;
    return 0;
  }
  if (data_type == uapi::kIrqSetDataNone && set.count == 0) {
    intx_enabled_ = false;
    intx_fd_ = -1;
    return 0;
  }
  // Loopback: signal as if the line had fired.
  if (act && intx_enabled_ && !intx_masked_) SignalIntx();
  return 0;
}

int ModelHostDevice::SetMsiIrqs(const uapi::vfio_irq_set& set,
                                const uint8_t* data) {
  const uint32_t data_type = set.flags & kDataMask;
  if (!(set.flags & uapi::kIrqSetActionTrigger)) return -ENOTTY;
  if (data_type == uapi::kIrqSetDataNone && set.count == 0) {
    msi_enabled_ = false;
    msi_fd_ = -1;
    config_->set_msi_enable(false);
    UpdateIntx(engine_->irq_status() != 0);  // back to INTx delivery
    return 0;
  }
  if (data_type == uapi::kIrqSetDataEventfd) {
    if (intx_enabled_) return -EINVAL;
    msi_enabled_ = true;
    msi_fd_ = EventfdAt(data, 0);  // -1: vector without a trigger
    config_->set_msi_enable(true);
    UpdateIntx(false);  // a device sending MSI does not assert INTx
    return 0;
  }
  const bool act = data_type != uapi::kIrqSetDataBool || data[0] != 0;
  if (act && msi_enabled_) Signal(uapi::kPciMsiIrqIndex, msi_fd_);
  return 0;
}

void ModelHostDevice::IrqRaised() {
  if (msi_enabled_) {
    Signal(uapi::kPciMsiIrqIndex, msi_fd_);
  } else {
    UpdateIntx(true);
  }
}

void ModelHostDevice::IrqCleared() {
  if (!msi_enabled_) UpdateIntx(false);
}

// Sets the device's INTx level and recomputes the line: a rising line is
// an interrupt (subject to the automask).
void ModelHostDevice::UpdateIntx(bool level) {
  intx_level_ = level;
  config_->set_intx_status(level);
  const bool line =
      level && !(config_->command() & pcicfg::kCommandIntxDisable);
  const bool rising = line && !intx_line_;
  intx_line_ = line;
  if (rising && intx_enabled_ && !intx_masked_) SignalIntx();
}

void ModelHostDevice::SignalIntx() {
  intx_masked_ = true;  // automasked until the user unmasks
  Signal(uapi::kPciIntxIrqIndex, intx_fd_);
}

void ModelHostDevice::Signal(uint32_t index, int32_t fd) {
  if (fd < 0 || irq_sink_ == nullptr) return;
  irq_sink_->Signal(index, 0, fd);
}

}  // namespace viommu::vfio::model
