// viommu/vfio/type1_container.h — Type1Container, the legacy VFIO container
// (QEMU's VFIOLegacyContainer): /dev/vfio/vfio + groups + the type1 IOMMU.
//
//   absl::StatusOr<Type1Group> g = Type1Container::OpenGroup(backend, 1);
//   // Offer it to existing containers of the same AddressSpace first:
//   absl::Status s = existing->TryAddGroup(*g);   // EINVAL: try the next
//   // ...or make a new one (its listener maps the AddressSpace at once):
//   auto c = Type1Container::Create(backend, &as, /*id=*/1, std::move(*g),
//                                   "0000:01:00.0", options);
//
// Setup order (docs/vfio-container.md, Lifecycle): open /dev/vfio/vfio,
// VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION(TYPE1v2, else TYPE1),
// VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO (argsz
// retry; capability chain IOVA_RANGE + DMA_AVAIL), CHECK_EXTENSION(UNMAP_ALL),
// then the listener. MAP_DMA's EBUSY unmaps the range and retries once.
// Teardown (destructor): listener off (unmaps), any remaining mapping unmapped,
// VFIO_GROUP_UNSET_CONTAINER + close per group, close the container.
//
// Thread-safety: control context only. The HostBackend and AddressSpace
// are not owned and must outlive the container.
#ifndef VIOMMU_VFIO_TYPE1_CONTAINER_H_
#define VIOMMU_VFIO_TYPE1_CONTAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "viommu/vfio/backend_fd.h"
#include "viommu/vfio/container.h"

namespace viommu::vfio {

// An open, viable VFIO group not (yet) owned by a container.
struct Type1Group {
  uint32_t number = 0;
  BackendFd fd;
  std::vector<std::string> devices;  // names attached through this group
};

class Type1Container final : public VfioContainer {
 public:
  // open("/dev/vfio/<group>") and VFIO_GROUP_GET_STATUS.
  // Errors: HostCallError of the open or ioctl; kFailedPrecondition when
  // the group is not viable (a device in it is not bound to vfio).
  [[nodiscard]] static absl::StatusOr<Type1Group> OpenGroup(
      HostBackend* backend, uint32_t group);

  // Creates the container around `group` (see the setup order above) and
  // registers its listener on `as`, which maps every current section.
  // `device` names the first device (x-query-vfio).
  // Errors: the first host error (HostCallError), kFailedPrecondition for
  // an API version mismatch or no type1 support, or the first listener
  // error; everything done so far is undone (the group is closed).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Type1Container>> Create(
      HostBackend* backend, memory::AddressSpace* as, uint32_t id,
      Type1Group group, std::string device, ContainerOptions options);

  ~Type1Container() override;

  // VFIO_GROUP_SET_CONTAINER of `group` into this container. On success the
  // group moves in (its devices are listed) and the IOVA ranges are re-read.
  // Errors: the ioctl's HostCallError; errno EINVAL means the kernel found
  // the group incompatible with this container (try the next). On error
  // `group` is left untouched.
  [[nodiscard]] absl::Status TryAddGroup(Type1Group& group);
  // Adds a device of a group already in this container.
  // REQUIRES: HasGroup(group).
  void AddGroupDevice(uint32_t group, std::string device);
  // Removes a device; when it was its group's last, the group leaves the
  // container (VFIO_GROUP_UNSET_CONTAINER, close). Returns whether the
  // group left. REQUIRES: the container keeps at least one group, or the
  // caller destroys it next.
  bool RemoveGroupDevice(uint32_t group, const std::string& device);

  bool HasGroup(uint32_t group) const;
  // The group's fd (for VFIO_GROUP_GET_DEVICE_FD), or -1.
  int GroupFd(uint32_t group) const;
  size_t group_count() const { return groups_.size(); }
  int fd() const { return fd_.get(); }
  unsigned long iommu_type() const { return iommu_type_; }
  bool unmap_all_supported() const { return unmap_all_; }
  // From GET_INFO's MIGRATION capability: the dirty-page tracking
  // granularities and the largest GET_BITMAP bitmap (bytes). Empty when
  // the kernel has no dirty tracking for this container.
  struct DirtyTracking {
    uint64_t pgsize_bitmap = 0;
    uint64_t max_bitmap_bytes = 0;
  };
  const std::optional<DirtyTracking>& dirty_tracking() const {
    return dirty_tracking_;
  }

 protected:
  [[nodiscard]] absl::Status HostMap(Iova iova, uint64_t size, Hva hva,
                                     bool readonly) override;
  [[nodiscard]] absl::Status HostUnmap(Iova iova, uint64_t size) override;
  bool HasUnmapAll() const override { return unmap_all_; }
  [[nodiscard]] absl::Status HostUnmapAll() override;
  [[nodiscard]] absl::Status ReadIovaInfo() override;
  void ReleaseHost() override;

 private:
  Type1Container(HostBackend* backend, memory::AddressSpace* as, uint32_t id,
                 ContainerOptions options);
  [[nodiscard]] absl::Status Setup(Type1Group group, std::string device);

  BackendFd fd_;
  unsigned long iommu_type_ = 0;
  bool unmap_all_ = false;
  uint32_t info_argsz_ = 0;  // GET_INFO reply size last needed
  std::optional<DirtyTracking> dirty_tracking_;
  std::vector<Type1Group> groups_;
};

}  // namespace viommu::vfio

#endif  // VIOMMU_VFIO_TYPE1_CONTAINER_H_
