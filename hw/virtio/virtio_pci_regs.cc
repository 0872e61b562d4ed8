// VirtioPciFunction's BAR4 register areas (VIRTIO 1.2 §4.1.4.3-§4.1.4.6):
// common configuration, ISR, device configuration and notify, with QEMU
// 7.2's per-field answers (see virtio_pci_function.h).
#include <span>

#include "hw/virtio/virtio_pci_msix.h"
#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::virtio {

uint64_t VirtioPciFunction::AreaRead(Area area, uint64_t offset,
                                     unsigned size) {
  switch (area) {
    case Area::kCommon:
      return CommonRead(offset) & AllOnes(size);
    case Area::kIsr: {
      // Read-to-clear, at any offset of the area.
      const uint8_t value = isr_;
      isr_ = 0;
      LowerIntx();
      return value;
    }
    case Area::kDevice:
      return DeviceConfigRead(offset, size);
    case Area::kNotify:
      return 0;
  }
  return 0;
}

void VirtioPciFunction::AreaWrite(Area area, uint64_t offset, uint64_t value,
                                  unsigned size) {
  switch (area) {
    case Area::kCommon:
      CommonWrite(offset, value);
      return;
    case Area::kIsr:
      return;  // read-only
    case Area::kDevice:
      DeviceConfigWrite(offset, value, size);
      return;
    case Area::kNotify:
      QueueNotify(static_cast<unsigned>(offset / kVirtioPciNotifyMultiplier));
      return;
  }
}

uint64_t VirtioPciFunction::CommonRead(uint64_t offset) {
  const QueueRegs& q = regs_[queue_select_];
  const bool exists = queue_select_ < queues_.size();
  switch (static_cast<CommonCfg>(offset)) {
    case CommonCfg::kDeviceFeatureSelect:
      return device_feature_select_;
    case CommonCfg::kDeviceFeature:
      return device_feature_select_ < 2
                 ? (offered_ >> (32 * device_feature_select_)) & 0xffffffff
                 : 0;
    case CommonCfg::kDriverFeatureSelect:
      return driver_feature_select_;
    case CommonCfg::kDriverFeature:
      return driver_feature_select_ < 2 ? driver_words_[driver_feature_select_]
                                        : 0;
    case CommonCfg::kMsixConfig:
      return config_vector_;
    case CommonCfg::kNumQueues:
      return queues_.size();
    case CommonCfg::kDeviceStatus:
      return status_;
    case CommonCfg::kConfigGeneration:
      return generation_;
    case CommonCfg::kQueueSelect:
      return queue_select_;
    case CommonCfg::kQueueSize:
      return exists ? queues_[queue_select_]->size() : 0;
    case CommonCfg::kQueueMsixVector:
      return q.vector;
    case CommonCfg::kQueueEnable:
      return q.enabled ? 1 : 0;
    case CommonCfg::kQueueNotifyOff:
      return queue_select_;  // queue n notifies at n * multiplier
    case CommonCfg::kQueueDescLo:
      return q.desc[0];
    case CommonCfg::kQueueDescHi:
      return q.desc[1];
    case CommonCfg::kQueueDriverLo:
      return q.avail[0];
    case CommonCfg::kQueueDriverHi:
      return q.avail[1];
    case CommonCfg::kQueueDeviceLo:
      return q.used[0];
    case CommonCfg::kQueueDeviceHi:
      return q.used[1];
    case CommonCfg::kQueueReset:
      return 0;  // a queue reset completes within the write
  }
  return 0;
}

void VirtioPciFunction::SetQueueVector(uint16_t* slot, uint64_t value) {
  if (msix_ != nullptr) msix_->Unuse(*slot);
  // A vector past the table reads back as NO_VECTOR, so the driver sees
  // the failure (as QEMU).
  if (msix_ != nullptr && value < msix_->vectors() &&
      msix_->Use(static_cast<unsigned>(value))) {
    *slot = static_cast<uint16_t>(value);
  } else {
    *slot = kNoVector;
  }
}

void VirtioPciFunction::CommonWrite(uint64_t offset, uint64_t value) {
  QueueRegs& q = regs_[queue_select_];
  const bool exists = queue_select_ < queues_.size();
  const uint32_t v32 = static_cast<uint32_t>(value);
  switch (static_cast<CommonCfg>(offset)) {
    case CommonCfg::kDeviceFeatureSelect:
      device_feature_select_ = v32;
      return;
    case CommonCfg::kDriverFeatureSelect:
      driver_feature_select_ = v32;
      return;
    case CommonCfg::kDriverFeature:
      if (driver_feature_select_ < 2) {
        driver_words_[driver_feature_select_] = v32;
        if (!(status_ & kStatusFeaturesOk)) {
          features_ =
              (uint64_t{driver_words_[1]} << 32 | driver_words_[0]) & offered_;
        }
      }
      return;
    case CommonCfg::kMsixConfig:
      SetQueueVector(&config_vector_, value);
      return;
    case CommonCfg::kDeviceStatus:
      SetStatus(static_cast<uint8_t>(value));
      return;
    case CommonCfg::kQueueSelect:
      if (value < kMaxQueues) queue_select_ = static_cast<uint16_t>(value);
      return;
    case CommonCfg::kQueueSize:
      q.num = static_cast<uint16_t>(value);
      if (exists) (void)queues_[queue_select_]->SetSize(q.num);
      return;
    case CommonCfg::kQueueMsixVector:
      SetQueueVector(&q.vector, value);
      return;
    case CommonCfg::kQueueEnable:
      if (value != 1) {
        DeviceError("queue_enable written with a value other than 1");
        return;
      }
      if (exists) {
        SplitVirtqueue& vq = *queues_[queue_select_];
        (void)vq.SetSize(q.num);
        vq.SetRings(uint64_t{q.desc[1]} << 32 | q.desc[0],
                    uint64_t{q.avail[1]} << 32 | q.avail[0],
                    uint64_t{q.used[1]} << 32 | q.used[0]);
      }
      q.enabled = true;
      return;
    case CommonCfg::kQueueDescLo:
      q.desc[0] = v32;
      return;
    case CommonCfg::kQueueDescHi:
      q.desc[1] = v32;
      return;
    case CommonCfg::kQueueDriverLo:
      q.avail[0] = v32;
      return;
    case CommonCfg::kQueueDriverHi:
      q.avail[1] = v32;
      return;
    case CommonCfg::kQueueDeviceLo:
      q.used[0] = v32;
      return;
    case CommonCfg::kQueueDeviceHi:
      q.used[1] = v32;
      return;
    case CommonCfg::kQueueReset:
      if (value == 1) ResetQueue(queue_select_);
      return;
    case CommonCfg::kDeviceFeature:
    case CommonCfg::kNumQueues:
    case CommonCfg::kConfigGeneration:
    case CommonCfg::kQueueNotifyOff:
      return;  // read-only
  }
}

uint64_t VirtioPciFunction::DeviceConfigRead(uint64_t offset, unsigned size) {
  if (offset + size > config_size_) return AllOnes(size);
  device_->ReadConfig(std::span<uint8_t>(config_copy_));
  return LoadLe(&config_copy_[offset], size);
}

void VirtioPciFunction::DeviceConfigWrite(uint64_t offset, uint64_t value,
                                          unsigned size) {
  if (offset + size > config_size_) return;
  StoreLe(&config_copy_[offset], value, size);
  device_->WriteConfig(std::span<const uint8_t>(config_copy_),
                       static_cast<uint32_t>(offset), size);
}

void VirtioPciFunction::QueueNotify(unsigned index) {
  if (index >= queues_.size() || broken_ || !queues_[index]->live()) return;
  device_->QueueNotified(index);
}

}  // namespace viommu::hw::virtio
