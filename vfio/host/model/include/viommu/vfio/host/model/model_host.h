// viommu/vfio/host/model/model_host.h — the model HostBackend: Linux VFIO's
// legacy container/group/device uAPI answered in-process from a
// HostPlatform, with type1 modelled by Type1Iommu and each host device by a
// ModelDeviceOps from the factory.
//
//   ModelHost host(DefaultHostPlatform(), {.kernel = KernelVersion::k6_1});
//   int c = host.Open("/dev/vfio/vfio");          // fds start at kFirstFd
//   int g = host.Open("/dev/vfio/1");             // -ENOENT unknown group
//   host.Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&c));
//   host.Ioctl(c, uapi::kVfioSetIommu, uapi::kVfioType1v2Iommu);
//   int d = host.Ioctl(g, uapi::kVfioGroupGetDeviceFd, AsArg("0000:01:00.0"));
//
//   int ictx = host.Open("/dev/iommu");            // an IommufdCtx per open
//   int cdev = host.Open("/dev/vfio/devices/vfio0");  // see DeviceCdevPath
//   uapi::vfio_device_bind_iommufd b{.argsz = 24, .iommufd = ictx};
//   host.Ioctl(cdev, uapi::kVfioDeviceBindIommufd, AsArg(&b));
//
// Paths: /dev/vfio/vfio (a new container per open), /dev/vfio/<group>
// (single opener), device fds from GROUP_GET_DEVICE_FD (name = BDF),
// /dev/iommu (an IommufdCtx on process_memory(); ioctls forwarded) and
// /dev/vfio/devices/vfio<N> (VFIO cdev, N = platform index;
// docs/vfio-iommufd-model.md, see model_host_iommufd.cc). Both iommufd paths
// exist for every KernelVersion (6.1 has neither: a deliberate superset);
// the version only selects SET_CONTAINER's errno for a foreign fd. An
// IommufdCtx lives while its fd, a bound device or a group set to it
// references it (Linux's file reference). A device's DMA domain follows
// its type1 container or its iommufd binding (ModelDeviceOps::AttachDomain).
// Fds are small ints from kFirstFd (1000) so they never look like real fds;
// the lowest free one is reused. Thread-safety: not thread-safe; one
// control context calls it, and simulated device DMA runs there too.
#ifndef VIOMMU_VFIO_HOST_MODEL_MODEL_HOST_H_
#define VIOMMU_VFIO_HOST_MODEL_MODEL_HOST_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/iommufd_ctx.h"
#include "viommu/vfio/host/model/model_device_ops.h"
#include "viommu/vfio/host/model/process_memory.h"
#include "viommu/vfio/host/model/type1_iommu.h"

namespace viommu::vfio::model {

class VfioContainerModel;
class VfioGroupModel;

struct ModelHostOptions {
  KernelVersion kernel = KernelVersion::k6_1;
  // One ModelDeviceOps per platform device. Empty: device fds answer
  // DEVICE_GET_INFO and RESET; region/irq calls give -EINVAL.
  ModelDeviceFactory device_factory;
};

class ModelHost final : public HostBackend {
 public:
  static constexpr int kFirstFd = 1000;

  // A device the factory fails to make has no ops (its fd answers region
  // and irq calls with -EINVAL); device_status() keeps the first error.
  explicit ModelHost(HostPlatform platform, ModelHostOptions options = {});
  // The constructor, failing with the factory's first error (e.g.
  // kResourceExhausted: a device's BAR2 memory cannot be created).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ModelHost>> Create(
      HostPlatform platform, ModelHostOptions options = {});
  ~ModelHost() override;

  std::string_view name() const override { return "model"; }
  [[nodiscard]] int Open(std::string_view path) override;
  int Close(int fd) override;
  [[nodiscard]] int Ioctl(int fd, unsigned long request,
                          uintptr_t arg) override;
  [[nodiscard]] int64_t Pread(int fd, void* buf, uint64_t len,
                              uint64_t offset) override;
  [[nodiscard]] int64_t Pwrite(int fd, const void* buf, uint64_t len,
                               uint64_t offset) override;
  // REQUIRES for Munmap: addr/len as returned by / passed to Mmap.
  [[nodiscard]] absl::StatusOr<void*> Mmap(int fd, uint64_t len,
                                           uint64_t offset) override;
  void Munmap(void* addr, uint64_t len) override;
  [[nodiscard]] absl::StatusOr<uint32_t> IommuGroupOf(
      const HostPciAddress& device) override;
  [[nodiscard]] absl::StatusOr<std::vector<ResvRegion>> GroupReservedRegions(
      uint32_t group) override;
  [[nodiscard]] absl::StatusOr<std::string> DeviceCdevPath(
      const HostPciAddress& device) override;

  // Fault injection. The n-th MAP_DMA (n >= 1, counted from now over all
  // containers, after argsz/flag checks) fails with -err and changes
  // nothing; n = 0 disarms.
  void FailNthMapDma(uint64_t n, int err);
  // The next attach of `group` (SET_IOMMU or SET_CONTAINER) fails with -err,
  // as a failing iommu_attach_group would.
  void FailNextGroupAttach(uint32_t group, int err);

  // Accessors for tests and QMP.
  const HostPlatform& platform() const { return platform_; }
  ProcessMemory& process_memory() { return mem_; }
  uint64_t locked_pages() const { return mem_.locked_pages(); }
  std::vector<int> ContainerFds() const;
  // The container's type1 driver; nullptr for a non-container fd or before
  // SET_IOMMU.
  const Type1Iommu* ContainerIommu(int fd) const;
  // Mappings (vfio_dma count) and pages charged of a container fd; 0 before
  // SET_IOMMU; kNotFound for a non-container fd.
  [[nodiscard]] absl::StatusOr<uint64_t> ContainerMappingCount(int fd) const;
  [[nodiscard]] absl::StatusOr<uint64_t> ContainerLockedPages(int fd) const;
  // OK, or the first error the device factory returned.
  const absl::Status& device_status() const { return device_status_; }
  // The simulated device; nullptr without a factory, for unknown BDFs, or
  // when the factory failed for it.
  ModelDeviceOps* device(const HostPciAddress& address) const;
  // The domain the device's DMA goes through now (type1 or iommufd), or
  // nullptr (blocked / unknown BDF).
  HostIommuDomain* DeviceDmaDomain(const HostPciAddress& address) const;

  // iommufd accessors (x-query). Open /dev/iommu fds, ascending.
  std::vector<int> IommufdFds() const;
  // The ctx of a /dev/iommu fd, or nullptr.
  const IommufdCtx* Iommufd(int fd) const;
  // IOAS ids of a /dev/iommu fd; kNotFound for another fd.
  [[nodiscard]] absl::StatusOr<std::vector<uint32_t>> IoasIds(int fd) const;
  // Mappings (areas) of an IOAS; kNotFound for a non-iommufd fd or an id
  // that is not an IOAS.
  [[nodiscard]] absl::StatusOr<uint64_t> IoasMappingCount(
      int fd, uint32_t ioas_id) const;

 private:
  enum class FdKind { kContainer, kGroup, kDevice, kIommufd, kCdev };
  struct FdEntry {
    FdKind kind;
    std::shared_ptr<VfioContainerModel> container;  // kContainer
    VfioGroupModel* group = nullptr;                // kGroup, kDevice, kCdev
    size_t device = 0;  // kDevice, kCdev: devices_ index
    // kIommufd: its ctx. kCdev: the ctx it is bound to (null before BIND).
    std::shared_ptr<IommufdCtx> iommufd;
    uint32_t devid = 0;  // kCdev once bound
  };
  struct DeviceSlot {
    const HostDeviceDesc* desc;
    std::unique_ptr<ModelDeviceOps> ops;
    HostIommuDomain* attached = nullptr;
    int group_path_fds = 0;  // open GET_DEVICE_FD fds of this device
    int cdev_bound_fd = -1;  // the cdev fd that bound it, or -1
    // Legacy group + iommufd: bound at the first GET_DEVICE_FD, unbound
    // at the last close.
    std::shared_ptr<IommufdCtx> group_ctx;
    uint32_t group_devid = 0;
  };
  struct DeviceMapping {
    ModelDeviceOps* ops;
    uint64_t len;
    int refs;
  };

  int NewFd(FdEntry entry);
  int GroupIoctl(VfioGroupModel* group, unsigned long request, uintptr_t arg);
  int SetContainer(VfioGroupModel* group, uintptr_t arg);
  int DeviceIoctl(DeviceSlot& slot, unsigned long request, uintptr_t arg);
  int GetDeviceFd(VfioGroupModel* group, uintptr_t arg);
  void ReleaseGroupIfIdle(VfioGroupModel* group);
  // Tells every type1 device which domain its DMA now goes through
  // (iommufd-bound devices follow their IommufdDomainFn instead).
  void SyncDeviceDomains();
  void SetDeviceDomain(size_t device, HostIommuDomain* domain);
  const FdEntry* Find(int fd) const;
  // The device behind a device or bound cdev fd; *err is the errno of
  // anything else (-EBADF, -EINVAL for an unbound cdev, `not_device`).
  DeviceSlot* DeviceOfFd(int fd, int not_device, int* err);

  // iommufd (model_host_iommufd.cc).
  int OpenIommufd();
  int OpenCdev(std::string_view path);
  int CdevIoctl(int fd, FdEntry& entry, unsigned long request, uintptr_t arg);
  int BindIommufd(int fd, FdEntry& entry, uintptr_t arg);
  // iommufd_device_bind's DMA-owner rule: EPERM when a group-mate is bound
  // to another ctx.
  int CheckDmaOwner(size_t device, const IommufdCtx* ctx) const;
  IommufdDomainFn DomainFnFor(size_t device);
  // GET_DEVICE_FD on a group set to an iommufd: bind (first open) and
  // attach to the compat IOAS.
  int GroupPathBind(VfioGroupModel* group, size_t device);
  void CloseCdev(FdEntry& entry);
  void CloseGroupPathDevice(FdEntry& entry);
  bool GroupHasBoundCdev(uint32_t group) const;

  HostPlatform platform_;
  ModelHostOptions options_;
  ProcessMemory mem_;
  ModelFaults faults_;
  std::vector<DeviceSlot> devices_;
  absl::Status device_status_;  // the factory's first error
  std::map<uint32_t, std::unique_ptr<VfioGroupModel>> groups_;
  std::map<int, FdEntry> fds_;
  std::map<uint64_t, DeviceMapping> mmaps_;  // address -> mapping
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_MODEL_HOST_H_
