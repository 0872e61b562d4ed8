// viommu/vfio/host/model/model_device_ops.h — what ModelHost needs from one
// simulated host device (the edu-compatible DMA engine + BAR2 of
// host_device.h implements it): vfio-pci's region/irq/reset operations and
// the host IOMMU domain its DMA goes through.
//
//   ModelHostOptions opts;
//   opts.device_factory = [](const HostDeviceDesc& d) {
//     return std::make_unique<MyDevice>(d);   // : public ModelDeviceOps
//   };
//   ModelHost host(DefaultHostPlatform(), std::move(opts));
//
// ModelHost creates one object per platform device at construction; it
// lives as long as the host (hardware state survives device-fd reopens).
// ModelHost validates argsz/index before delegating. Thread-safety: all
// calls come from the model host's control context.
#ifndef VIOMMU_VFIO_HOST_MODEL_MODEL_DEVICE_OPS_H_
#define VIOMMU_VFIO_HOST_MODEL_MODEL_DEVICE_OPS_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/host_iommu_domain.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

class ModelDeviceOps {
 public:
  ModelDeviceOps() = default;
  ModelDeviceOps(const ModelDeviceOps&) = delete;
  ModelDeviceOps& operator=(const ModelDeviceOps&) = delete;
  virtual ~ModelDeviceOps() = default;

  // VFIO_DEVICE_GET_REGION_INFO for `index` < kPciNumRegions: fill flags,
  // size and offset (PciIndexToOffset(index)); argsz/index/cap_offset are
  // set by the caller. 0 or -EINVAL.
  virtual int GetRegionInfo(uint32_t index, uapi::vfio_region_info* out) = 0;
  // pread/pwrite at a device-fd offset (region index in bits 40+). Bytes
  // transferred or -errno (-EINVAL outside every region).
  virtual int64_t RegionRead(uint64_t offset, void* buf, uint64_t len) = 0;
  virtual int64_t RegionWrite(uint64_t offset, const void* buf,
                              uint64_t len) = 0;
  // mmap of a mmap-able region (BAR2): a read/write pointer to `len` bytes
  // of device memory at `offset`, valid until Munmap. ModelHost registers
  // the range as device memory (VM_PFNMAP) with ProcessMemory.
  [[nodiscard]] virtual absl::StatusOr<void*> Mmap(uint64_t offset,
                                                   uint64_t len) = 0;
  virtual void Munmap(void* addr, uint64_t len) = 0;
  // VFIO_DEVICE_RESET: 0 or -errno.
  virtual int Reset() = 0;
  // VFIO_DEVICE_GET_IRQ_INFO for `index` < kPciNumIrqs: fill flags and
  // count. 0 or -EINVAL.
  virtual int GetIrqInfo(uint32_t index, uapi::vfio_irq_info* out) = 0;
  // VFIO_DEVICE_SET_IRQS: `set` is the validated header (argsz >= 20),
  // `data` the payload after it. 0 or -errno.
  virtual int SetIrqs(const uapi::vfio_irq_set& set, const uint8_t* data) = 0;
  // The domain the device's DMA is translated by from now on; nullptr when
  // its group is not attached (DMA faults). Called by ModelHost whenever
  // that changes; the pointer is valid until the next call.
  virtual void AttachDomain(HostIommuDomain* domain) = 0;
};

// Makes the simulated device behind one platform device. An error (the
// device's resources cannot be created) reaches ModelHost::Create.
using ModelDeviceFactory =
    std::function<absl::StatusOr<std::unique_ptr<ModelDeviceOps>>(
        const HostDeviceDesc&)>;

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_MODEL_DEVICE_OPS_H_
