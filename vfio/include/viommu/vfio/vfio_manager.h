// viommu/vfio/vfio_manager.h — VfioManager, the attach logic: which
// container a passthrough device joins (QEMU's vfio_address_space_get +
// vfio_container_connect / iommufd_cdev_attach), detach and teardown, and
// the x-query-vfio view. system/ owns one per machine.
//
//   VfioManager vfio(&host_backend, {.on_error = ..., });
//   // The device's DMA address space: per device with a vIOMMU, else the
//   // machine's memory address space (shared containers).
//   absl::StatusOr<VfioContainer*> c = vfio.AttachDevice(
//       dev_as, {.host = *HostPciAddress::Parse("0000:01:00.0")});
//   absl::StatusOr<devcore::HostIommuDevice> h = vfio.HostIommuInfo(addr);
//   std::vector<ContainerQuery> q = vfio.Query();      // x-query-vfio
//   vfio.DetachDevice(addr);   // last device: container torn down
//
// Attach (ARCHITECTURE.md §4): type1 opens the device's group and offers
// it to each existing type1 container of the same AddressSpace in creation
// order (VFIO_GROUP_SET_CONTAINER); iommufd binds the cdev and offers it to
// each iommufd container of the same AddressSpace and iommufd object
// (VFIO_DEVICE_ATTACH_IOMMUFD_PT). EINVAL means incompatible (for iommufd
// also EADDRINUSE: a reserved region or aperture clash): try the next.
// Any other error fails the attach. None accepted: a new container, whose
// listener maps the AddressSpace before AttachDevice returns; its first
// error fails the attach and leaves nothing behind. With a vIOMMU each
// device has its own AddressSpace and therefore its own container.
//
// Callbacks run synchronously in the control context (see container.h);
// they must not call back into the manager.
//
// Thread-safety: control context only. The HostBackend and every
// AddressSpace passed in are not owned and must outlive the manager (or
// the devices attached to them).
#ifndef VIOMMU_VFIO_VFIO_MANAGER_H_
#define VIOMMU_VFIO_VFIO_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/devcore/host_iommu_device.h"
#include "viommu/memory/address_space.h"
#include "viommu/vfio/backend_fd.h"
#include "viommu/vfio/container.h"
#include "viommu/vfio/container_types.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::vfio {

struct VfioDeviceSpec {
  HostPciAddress host;
  // Empty: legacy type1 through the device's group. Otherwise the id of the
  // `-object iommufd,id=ID` to bind the device's cdev to.
  std::string iommufd;
  // The name x-query-vfio lists ("devices"); empty: the host BDF.
  std::string name;
};

class VfioManager {
 public:
  struct Options {
    uint64_t host_page_size = 0;  // 0: the process's page size
    // An error after a container's initialisation (container id, status).
    std::function<void(uint32_t, const absl::Status&)> on_error;
    // A container's warning (container id, status).
    std::function<void(uint32_t, const absl::Status&)> on_warning;
    // QMP VFIO_IOVA_RANGES_CHANGED (container id, new ranges).
    std::function<void(uint32_t, const std::vector<Range>&)>
        on_iova_ranges_changed;
  };

  // `backend` is not owned and outlives this.
  explicit VfioManager(HostBackend* backend) : VfioManager(backend, {}) {}
  VfioManager(HostBackend* backend, Options options);
  VfioManager(const VfioManager&) = delete;
  VfioManager& operator=(const VfioManager&) = delete;
  // Detaches every device (DetachAll).
  ~VfioManager();

  // Attaches the host device for DMA in `as` (see file comment). Returns the
  // container (owned by the manager; valid until the device's detach).
  // Errors: kAlreadyExists (attached already); kFailedPrecondition (its
  // group is attached in another AddressSpace, group not viable, no type1);
  // kNotFound (unknown device / no cdev); a HostCallError (errno, op,
  // args); or the new container's first listener error.
  // REQUIRES: as != nullptr.
  [[nodiscard]] absl::StatusOr<VfioContainer*> AttachDevice(
      memory::AddressSpace* as, const VfioDeviceSpec& spec);

  // Detaches the device. When it was its container's last device, the
  // container is torn down: listener off, every host mapping removed,
  // groups/devices released. Errors: kNotFound.
  [[nodiscard]] absl::Status DetachDevice(const HostPciAddress& host);
  // Detaches every device; no container or host mapping remains.
  void DetachAll();

  // The device's VFIO device fd (type1: VFIO_GROUP_GET_DEVICE_FD on first
  // use; iommufd: the bound cdev). Owned by the manager, valid until the
  // device is detached. Errors: kNotFound, HostCallError.
  [[nodiscard]] absl::StatusOr<int> DeviceFd(const HostPciAddress& host);

  // nullptr when the device is not attached.
  VfioContainer* ContainerOf(const HostPciAddress& host) const;
  // Containers of `as`, in creation order.
  std::vector<VfioContainer*> ContainersOf(
      const memory::AddressSpace* as) const;
  size_t container_count() const { return containers_.size(); }

  // Host IOMMU facts of the device's container. Errors: kNotFound.
  [[nodiscard]] absl::StatusOr<devcore::HostIommuDevice> HostIommuInfo(
      const HostPciAddress& host) const;
  // x-query-vfio: every container in id order.
  std::vector<ContainerQuery> Query() const;

 private:
  struct Device {
    HostPciAddress host;
    std::string name;                    // VfioDeviceSpec::name or the BDF
    VfioContainer* container = nullptr;  // owned by containers_
    uint32_t group = 0;                  // type1 only
    BackendFd device_fd;                 // type1 GET_DEVICE_FD, lazily
  };

  [[nodiscard]] absl::StatusOr<VfioContainer*> AttachType1(
      memory::AddressSpace* as, const HostPciAddress& host,
      const std::string& name, uint32_t* group_out);
  [[nodiscard]] absl::StatusOr<VfioContainer*> AttachIommufd(
      memory::AddressSpace* as, const VfioDeviceSpec& spec,
      const std::string& name);
  [[nodiscard]] absl::StatusOr<int> IommufdFd(const std::string& id);
  ContainerOptions OptionsFor(uint32_t id);
  void DestroyContainer(VfioContainer* c);

  HostBackend* const backend_;  // not owned
  Options options_;
  uint32_t next_id_ = 1;
  // Declared before containers_: the /dev/iommu fds outlive every container.
  std::map<std::string, BackendFd> iommufds_;  // by -object iommufd id
  std::vector<std::unique_ptr<VfioContainer>> containers_;  // creation order
  std::vector<std::unique_ptr<Device>> devices_;            // attach order
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_VFIO_MANAGER_H_
