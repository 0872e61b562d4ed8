// vfio/host/model/iommufd_impl.h — IommufdCtx's private state: the object
// table (§4.1) and the handlers, split over iommufd_ctx.cc (dispatch, IOAS
// and OPTION commands), iommufd_device.cc (HWPT_PAGING, device bind/attach)
// and iommufd_compat.cc (VFIO container emulation, §4.12).
// Thread-safety: none; see IommufdCtx.
#ifndef VIOMMU_VFIO_HOST_MODEL_IOMMUFD_IMPL_H_
#define VIOMMU_VFIO_HOST_MODEL_IOMMUFD_IMPL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/btree_map.h"
#include "vfio/host/model/io_pagetable.h"
#include "viommu/vfio/host/model/iommufd_ctx.h"

namespace viommu::vfio::model {

enum class IommufdObjType { kIoas, kHwptPaging, kDevice };

struct IommufdObject {
  explicit IommufdObject(IommufdObjType t) : type(t) {}
  virtual ~IommufdObject() = default;
  IommufdObjType type;
  uint32_t id = 0;
  uint32_t users = 0;  // references that make DESTROY fail with EBUSY
};

struct IommufdHwpt;

struct IommufdIoas final : IommufdObject {
  explicit IommufdIoas(ProcessMemory* m)
      : IommufdObject(IommufdObjType::kIoas), iopt(m) {}
  IoPagetable iopt;
  std::vector<IommufdHwpt*> hwpts;  // creation order; auto and manual
};

struct IommufdDevice;

struct IommufdHwpt final : IommufdObject {
  IommufdHwpt() : IommufdObject(IommufdObjType::kHwptPaging) {}
  IommufdIoas* ioas = nullptr;  // holds a users reference
  std::unique_ptr<HostIommuDomain> domain;
  uint64_t aperture_start = 0;
  bool auto_domain = false;
  bool nest_parent = false;
  std::vector<IommufdDevice*> devices;
};

struct IommufdDevice final : IommufdObject {
  IommufdDevice() : IommufdObject(IommufdObjType::kDevice) {}
  IommufdDeviceDesc desc;
  IommufdDomainFn on_domain;
  IommufdHwpt* hwpt = nullptr;
};

// The user-memory view of one iommufd command (iommufd_ucmd).
struct Ucmd {
  uintptr_t ubuffer = 0;
  uint32_t user_size = 0;
  void* cmd = nullptr;  // zero-extended kernel copy
  size_t cmd_size = 0;
};

class IommufdCtx::Impl {
 public:
  Impl(ProcessMemory* memory, IommufdCtxOptions options);
  ~Impl();

  int Ioctl(unsigned long request, uintptr_t arg);

  // Objects (iommufd_ctx.cc).
  uint32_t Insert(std::unique_ptr<IommufdObject> obj);
  IommufdObject* Find(uint32_t id) const;
  template <typename T>
  T* FindAs(uint32_t id, IommufdObjType t) const {
    IommufdObject* o = Find(id);
    return o != nullptr && o->type == t ? static_cast<T*>(o) : nullptr;
  }
  IommufdIoas* FindIoas(uint32_t id) const {
    return FindAs<IommufdIoas>(id, IommufdObjType::kIoas);
  }
  void Erase(uint32_t id);
  void DestroyIoas(IommufdIoas* ioas);

  // Commands (iommufd_ctx.cc).
  int CmdDestroy(Ucmd& u);
  int CmdIoasAlloc(Ucmd& u);
  int CmdIoasAllowIovas(Ucmd& u);
  int CmdIoasCopy(Ucmd& u);
  int CmdIoasIovaRanges(Ucmd& u);
  int CmdIoasMap(Ucmd& u);
  int CmdIoasUnmap(Ucmd& u);
  int CmdOption(Ucmd& u);
  int CmdVfioIoas(Ucmd& u);
  int CmdIoasMapFile(Ucmd& u);
  int Respond(Ucmd& u);

  // HWPT and devices (iommufd_device.cc).
  int CmdHwptAlloc(Ucmd& u);
  int AllocHwptPaging(IommufdIoas* ioas, const IommufdDeviceDesc& desc,
                      bool auto_domain, bool nest_parent, IommufdHwpt** out);
  void DestroyHwpt(IommufdHwpt* hwpt);
  int Attach(IommufdDevice* dev, uint32_t* pt_id);
  int AttachToHwpt(IommufdDevice* dev, IommufdHwpt* hwpt);
  void Detach(IommufdDevice* dev);
  int BindDevice(const IommufdDeviceDesc& desc, IommufdDomainFn fn,
                 uint32_t* out_devid);
  void Unbind(uint32_t devid);

  // VFIO compat (iommufd_compat.cc).
  int CompatIoctl(unsigned long request, uintptr_t arg);
  int CompatCheckExtension(unsigned long type);
  int CompatSetIommu(unsigned long type);
  int CompatMapDma(uintptr_t arg);
  int CompatUnmapDma(uintptr_t arg);
  int CompatGetInfo(uintptr_t arg);

  ProcessMemory* memory_;  // not owned
  IommufdCtxOptions options_;
  bool account_per_mm_ = false;
  absl::btree_map<uint32_t, std::unique_ptr<IommufdObject>> objects_;
  IommufdIoas* compat_ioas_ = nullptr;
};

// Shared helpers.
uint32_t IommufdPermFromFlags(uint32_t map_flags);

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_IOMMUFD_IMPL_H_
