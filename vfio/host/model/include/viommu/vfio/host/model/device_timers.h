// viommu/vfio/host/model/device_timers.h — the simulated host devices'
// names for devcore's timer interface (devcore/include/viommu/devcore/
// device_timers.h), which hw::VirtualClock implements: one interface, so
// the machine clock drives a host device's DMA with no adapter.
#ifndef VIOMMU_VFIO_HOST_MODEL_DEVICE_TIMERS_H_
#define VIOMMU_VFIO_HOST_MODEL_DEVICE_TIMERS_H_

#include "viommu/devcore/device_timers.h"

namespace viommu::vfio::model {

using devcore::DeviceTimer;
using devcore::DeviceTimers;

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_DEVICE_TIMERS_H_
