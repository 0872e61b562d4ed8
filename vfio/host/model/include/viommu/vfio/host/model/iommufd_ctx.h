// viommu/vfio/host/model/iommufd_ctx.h — the in-process model of one open
// of /dev/iommu (Linux's iommufd_ctx; docs/vfio-iommufd-model.md).
//
// The ModelHost fd table owns one IommufdCtx per open of /dev/iommu (and per
// /dev/vfio/vfio when that is served by iommufd) and forwards ioctls; the
// VFIO device side (cdev BIND/ATTACH/DETACH, legacy group + iommufd) calls
// the device methods below.
//
//   ProcessMemory mem;
//   IommufdCtx ctx(&mem);
//   uapi::iommu_ioas_alloc a{.size = sizeof(a)};
//   ctx.Ioctl(uapi::kIommuIoasAlloc, AsArg(&a));          // a.out_ioas_id == 1
//   uint32_t devid = 0, pt = a.out_ioas_id;
//   ctx.BindDevice(IommufdDeviceDesc::FromHost(desc, platform.pgsize_bitmap),
//                  [dev](HostIommuDomain* d) { dev->SetDmaDomain(d); },
//                  &devid);
//   ctx.AttachDevice(devid, &pt);                          // pt = auto hwpt id
//
// Errors are -errno exactly as the kernel returns them; nothing aborts on
// user input. Thread-safety: not thread-safe; the control context calls
// everything (as HostBackend requires). Device DMA reads the domain given
// to the DomainFn on that same context.
#ifndef VIOMMU_VFIO_HOST_MODEL_IOMMUFD_CTX_H_
#define VIOMMU_VFIO_HOST_MODEL_IOMMUFD_CTX_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/host_iommu_domain.h"
#include "viommu/vfio/host/model/process_memory.h"

namespace viommu::vfio::model {

// What iommufd needs of a device it binds: its group, the geometry of the
// paging domains its host IOMMU makes, and its reserved regions.
struct IommufdDeviceDesc {
  std::string name;  // e.g. the BDF; for diagnostics only
  uint32_t group = 0;
  uint64_t aperture_start = 0;
  uint64_t aperture_last = UINT64_MAX;
  uint64_t pgsize_bitmap = (1ull << 12) | (1ull << 21) | (1ull << 30);
  std::vector<ResvRegion> reserved;  // all of this device's regions
  bool nest_parent_capable = false;  // HWPT_ALLOC NEST_PARENT accepted

  // A device of the model platform: aperture [0, aperture_last()],
  // the platform's page sizes, its reserved regions.
  static IommufdDeviceDesc FromHost(const HostDeviceDesc& d,
                                    uint64_t pgsize_bitmap);
  // The selftest mock device: aperture [1<<24, (1<<31)-1], 2 KiB minimum
  // page (2K|1M), no reserved regions, NEST_PARENT capable.
  static IommufdDeviceDesc Mock(uint32_t group);
};

// Told which host IOMMU domain the device's DMA goes through: a domain on
// attach and replace, nullptr on detach/unbind (blocked DMA). Called
// synchronously inside AttachDevice/DetachDevice/UnbindDevice and from
// ~IommufdCtx for devices still attached; the pointer stays valid until the
// next call. Optional (may be empty).
using IommufdDomainFn = std::function<void(HostIommuDomain* domain)>;

struct IommufdCtxOptions {
  // Whether the opener has CAP_SYS_RESOURCE (OPTION RLIMIT_MODE SET).
  bool cap_sys_resource = true;
  // /dev/vfio/vfio served by iommufd: the ctx starts in per-mm mode.
  bool vfio_container = false;
  // The last iommufd command number (_IOC_NR) the kernel has; higher ones
  // go to the VFIO compat handler (ENOTTY). Latest: 0x94; Linux 6.12: 0x8e
  // (IOMMU_FAULT_QUEUE_ALLOC).
  unsigned last_cmd_nr = 0x94;
};

class IommufdCtx final {
 public:
  // `memory` is not owned and outlives this. It carries both the per-user
  // and the per-mm locked_vm counter: the model has one user and one mm,
  // so RLIMIT_MODE only changes what OPTION GET reports.
  explicit IommufdCtx(ProcessMemory* memory, IommufdCtxOptions options = {});
  IommufdCtx(const IommufdCtx&) = delete;
  IommufdCtx& operator=(const IommufdCtx&) = delete;
  // close(2): destroys everything, leaf first (devices detached first).
  ~IommufdCtx();

  // ioctl(2) on the /dev/iommu fd: the iommufd commands of §4.2-§4.11
  // and the VFIO container numbers of §4.12. `arg` is a pointer into this
  // process (AsArg) or an integer for CHECK_EXTENSION / SET_IOMMU.
  // Returns >= 0 or -errno. As with the kernel's user pointers, `arg` must
  // point to at least the `size` (or argsz) bytes it claims; only NULL is
  // detected (EFAULT). Not modelled (→ -ENOTTY): GET_HW_INFO,
  // HWPT_SET_DIRTY_TRACKING..HW_QUEUE_ALLOC, IOMMU_TEST_CMD.
  [[nodiscard]] int Ioctl(unsigned long request, uintptr_t arg);

  // ---- device side (VFIO cdev flow §4.14 and legacy group + iommufd) ----
  // iommufd_device_bind: creates the DEVICE object; *out_devid = its id.
  // Returns 0 (our devices are cache coherent, isolated and grouped).
  [[nodiscard]] int BindDevice(const IommufdDeviceDesc& desc,
                               IommufdDomainFn on_domain, uint32_t* out_devid);
  // ATTACH_IOMMUFD_PT, or a replace if already attached. *pt_id is an IOAS
  // (auto domain; *pt_id becomes the hwpt id) or a HWPT_PAGING. Errors:
  // ENOENT (unknown pt_id or devid), EINVAL (wrong type, group-mate on
  // another hwpt, incompatible hwpt, SW_MSI clash), EADDRINUSE (aperture,
  // reserved region or alignment clash), EFAULT/ENOMEM (fill/pin).
  [[nodiscard]] int AttachDevice(uint32_t devid, uint32_t* pt_id);
  // DETACH_IOMMUFD_PT: never fails, also when not attached. Drops the
  // device's reservations; an auto hwpt dies with its last device.
  void DetachDevice(uint32_t devid);
  // Close of the device fd: detach, then destroy the DEVICE object.
  void UnbindDevice(uint32_t devid);

  // GROUP_SET_CONTAINER(iommufd): the compat IOAS, created if missing.
  // *out_ioas_id = its id. Returns 0.
  [[nodiscard]] int GetOrCreateCompatIoas(uint32_t* out_ioas_id);
  // Legacy GET_DEVICE_FD with an iommufd container: attach to the compat
  // IOAS (ENODEV without one; then AttachDevice's errors).
  [[nodiscard]] int AttachDeviceToCompatIoas(uint32_t devid);

  // ---- VFIO cdev ioctl helpers (§4.14) for the device fd ----
  // Steps 1-3 of VFIO_DEVICE_BIND_IOMMUFD (no fd table needed): EINVAL
  // (argsz < 16, iommufd < 0, unknown flags), E2BIG (non-zero tail past 24
  // bytes; only with `check_tail`: Linux 6.12 ignores the tail). On 0, *iommufd is the fd to look up and *token whether the
  // TOKEN flag is set. The fd table then does steps 4-6 (group fd path
  // EINVAL, group open EBUSY, already bound EINVAL), answers EINVAL for
  // *token (the model's drivers take no token), EBADF/EBADFD for the fd,
  // calls BindDevice and writes out_devid at offset 12.
  [[nodiscard]] static int CheckBindArgs(uintptr_t arg, int32_t* iommufd,
                                         bool* token, bool check_tail = true);
  // VFIO_DEVICE_ATTACH_IOMMUFD_PT on a bound device: EINVAL (argsz < 12,
  // unknown flags), EOPNOTSUPP (PASID), then AttachDevice's errors;
  // pt_id is written back on success.
  [[nodiscard]] int CdevAttachPt(uint32_t devid, uintptr_t arg);
  // VFIO_DEVICE_DETACH_IOMMUFD_PT: EINVAL (argsz < 8, unknown flags),
  // EOPNOTSUPP (PASID); otherwise detaches and returns 0.
  [[nodiscard]] int CdevDetachPt(uint32_t devid, uintptr_t arg);

  // ---- introspection and selftest hooks ----
  // IOMMU_TEST_OP_ADD_RESERVED: EINVAL (length 0), EOVERFLOW, ENOENT,
  // EADDRINUSE.
  [[nodiscard]] int TestAddReserved(uint32_t ioas_id, uint64_t start,
                                    uint64_t length);
  // The domain the device's DMA uses, or nullptr.
  HostIommuDomain* DeviceDomain(uint32_t devid) const;
  // The hwpt the device is attached to, or 0.
  uint32_t DeviceHwpt(uint32_t devid) const;
  // Number of live objects (all types).
  size_t object_count() const;
  // The live IOAS ids, ascending (x-query for ModelHost).
  std::vector<uint32_t> IoasIds() const;
  // Areas (IOAS mappings, after COPY/v1 cuts) of an IOAS; -ENOENT for an
  // id that is not an IOAS.
  [[nodiscard]] int64_t IoasAreaCount(uint32_t ioas_id) const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_IOMMUFD_CTX_H_
