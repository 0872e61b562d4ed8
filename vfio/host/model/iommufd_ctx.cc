// IommufdCtx: the object table, the ioctl dispatch rules (§4.2) and the
// IOAS / OPTION / VFIO_IOAS commands (§4.4-§4.10, §4.12 VFIO_IOAS).
#include "viommu/vfio/host/model/iommufd_ctx.h"

#include <cerrno>
#include <cstring>

#include "vfio/host/model/iommufd_impl.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::model {

namespace u = ::viommu::vfio::uapi;

namespace {

// IOMMU_IOAS_MAP_FILE (6.13); viommu's uapi header does not carry it yet.
struct iommu_ioas_map_file {
  uint32_t size;
  uint32_t flags;
  uint32_t ioas_id;
  int32_t fd;
  uint64_t start;
  uint64_t length;
  uint64_t iova;
};
static_assert(sizeof(iommu_ioas_map_file) == 40);

constexpr uint32_t kMapFlagsAll =
    u::kIoasMapFixedIova | u::kIoasMapWriteable | u::kIoasMapReadable;

struct OpEntry {
  size_t size;
  size_t min_size;
  int (IommufdCtx::Impl::*fn)(Ucmd&);
};

using I = IommufdCtx::Impl;
// Indexed by nr - 0x80, up to HW_QUEUE_ALLOC (0x94) as in the latest
// kernel. Slots without a handler are commands the model does not offer.
const OpEntry kOps[] = {
    {sizeof(u::iommu_destroy), 8, &I::CmdDestroy},        // 0x80
    {sizeof(u::iommu_ioas_alloc), 12, &I::CmdIoasAlloc},  // 0x81
    {sizeof(u::iommu_ioas_allow_iovas), 24, &I::CmdIoasAllowIovas},
    {sizeof(u::iommu_ioas_copy), 40, &I::CmdIoasCopy},  // 0x83
    {sizeof(u::iommu_ioas_iova_ranges), 32, &I::CmdIoasIovaRanges},
    {sizeof(u::iommu_ioas_map), 40, &I::CmdIoasMap},      // 0x85
    {sizeof(u::iommu_ioas_unmap), 24, &I::CmdIoasUnmap},  // 0x86
    {sizeof(u::iommu_option), 24, &I::CmdOption},         // 0x87
    {sizeof(u::iommu_vfio_ioas), 12, &I::CmdVfioIoas},    // 0x88
    {sizeof(u::iommu_hwpt_alloc), u::kIommuHwptAllocMinSize, &I::CmdHwptAlloc},
    {0, 0, nullptr},  // 0x8A GET_HW_INFO
    {0, 0, nullptr},  // 0x8B HWPT_SET_DIRTY_TRACKING
    {0, 0, nullptr},  // 0x8C HWPT_GET_DIRTY_BITMAP
    {0, 0, nullptr},  // 0x8D HWPT_INVALIDATE
    {0, 0, nullptr},  // 0x8E FAULT_QUEUE_ALLOC
    {sizeof(iommu_ioas_map_file), 40, &I::CmdIoasMapFile},  // 0x8F
    {0, 0, nullptr},                                        // 0x90 VIOMMU_ALLOC
    {0, 0, nullptr},  // 0x91 VDEVICE_ALLOC
    {0, 0, nullptr},  // 0x92 IOAS_CHANGE_PROCESS
    {0, 0, nullptr},  // 0x93 VEVENTQ_ALLOC
    {0, 0, nullptr},  // 0x94 HW_QUEUE_ALLOC
};
constexpr size_t kNumOps = sizeof(kOps) / sizeof(kOps[0]);

template <typename T>
T& Cmd(Ucmd& uc) {
  return *static_cast<T*>(uc.cmd);
}

}  // namespace

uint32_t IommufdPermFromFlags(uint32_t map_flags) {
  return ((map_flags & u::kIoasMapReadable) ? kPermRead : 0) |
         ((map_flags & u::kIoasMapWriteable) ? kPermWrite : 0);
}

// ---- the object table (§4.1)
// ---------------------------------------------------

IommufdCtx::Impl::Impl(ProcessMemory* memory, IommufdCtxOptions options)
    : memory_(memory),
      options_(options),
      account_per_mm_(options.vfio_container) {}

IommufdCtx::Impl::~Impl() {
  // Leaf first: devices, then hwpts, then IOASes.
  std::vector<uint32_t> ids;
  for (const auto& [id, o] : objects_) {
    if (o->type == IommufdObjType::kDevice) ids.push_back(id);
  }
  for (uint32_t id : ids) Unbind(id);
  ids.clear();
  for (const auto& [id, o] : objects_) {
    if (o->type == IommufdObjType::kHwptPaging) ids.push_back(id);
  }
  for (uint32_t id : ids)
    DestroyHwpt(FindAs<IommufdHwpt>(id, IommufdObjType::kHwptPaging));
  objects_.clear();
}

uint32_t IommufdCtx::Impl::Insert(std::unique_ptr<IommufdObject> obj) {
  // xa_alloc from 1: the lowest free id.
  uint32_t id = 1;
  for (const auto& [used, o] : objects_) {
    if (used != id) break;
    ++id;
  }
  obj->id = id;
  objects_.emplace(id, std::move(obj));
  return id;
}

IommufdObject* IommufdCtx::Impl::Find(uint32_t id) const {
  auto it = objects_.find(id);
  return it == objects_.end() ? nullptr : it->second.get();
}

void IommufdCtx::Impl::Erase(uint32_t id) { objects_.erase(id); }

void IommufdCtx::Impl::DestroyIoas(IommufdIoas* ioas) {
  if (compat_ioas_ == ioas) compat_ioas_ = nullptr;
  Erase(ioas->id);  // areas are unmapped (nothing pinned: no domains)
}

// ---- dispatch (§4.2)
// ---------------------------------------------------------------

int IommufdCtx::Impl::Ioctl(unsigned long request, uintptr_t arg) {
  const unsigned nr = request & 0xff;
  if (nr < u::kIommufdCmdBase || nr - u::kIommufdCmdBase >= kNumOps ||
      nr > options_.last_cmd_nr) {
    return CompatIoctl(request, arg);
  }
  if (arg == 0) return -EFAULT;  // get_user(size)
  const OpEntry& op = kOps[nr - u::kIommufdCmdBase];
  if (request != u::IoNr(nr) || op.fn == nullptr) return -ENOTTY;
  Ucmd uc;
  uc.ubuffer = arg;
  std::memcpy(&uc.user_size, reinterpret_cast<const void*>(arg), 4);
  if (uc.user_size < op.min_size) return -EINVAL;
  // copy_struct_from_user: a longer struct must have a zero tail; a shorter
  // one is zero-extended.
  const auto* user = reinterpret_cast<const uint8_t*>(arg);
  for (size_t i = op.size; i < uc.user_size; ++i) {
    if (user[i] != 0) return -E2BIG;
  }
  alignas(8) uint8_t buf[64] = {};
  std::memcpy(buf, user, std::min<size_t>(uc.user_size, op.size));
  uc.cmd = buf;
  uc.cmd_size = op.size;
  return (this->*op.fn)(uc);
}

int IommufdCtx::Impl::Respond(Ucmd& uc) {
  std::memcpy(reinterpret_cast<void*>(uc.ubuffer), uc.cmd,
              std::min<size_t>(uc.user_size, uc.cmd_size));
  return 0;
}

// ---- commands
// ----------------------------------------------------------------------------

int IommufdCtx::Impl::CmdDestroy(Ucmd& uc) {
  IommufdObject* o = Find(Cmd<u::iommu_destroy>(uc).id);
  if (o == nullptr) return -ENOENT;
  if (o->users > 0) return -EBUSY;
  switch (o->type) {
    case IommufdObjType::kIoas:
      DestroyIoas(static_cast<IommufdIoas*>(o));
      return 0;
    case IommufdObjType::kHwptPaging:
      DestroyHwpt(static_cast<IommufdHwpt*>(o));
      return 0;
    case IommufdObjType::kDevice:
      return -EBUSY;  // the VFIO driver holds it (users is never 0)
  }
  return -ENOENT;
}

int IommufdCtx::Impl::CmdIoasAlloc(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_ioas_alloc>(uc);
  if (cmd.flags != 0) return -EOPNOTSUPP;
  cmd.out_ioas_id = Insert(std::make_unique<IommufdIoas>(memory_));
  return Respond(uc);
}

int IommufdCtx::Impl::CmdIoasAllowIovas(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_ioas_allow_iovas>(uc);
  if (cmd.__reserved != 0) return -EOPNOTSUPP;
  IommufdIoas* ioas = FindIoas(cmd.ioas_id);
  if (ioas == nullptr) return -ENOENT;
  std::vector<IovaSpan> allowed;
  for (uint32_t i = 0; i < cmd.num_iovas; ++i) {
    if (cmd.allowed_iovas == 0) return -EFAULT;
    u::iommu_iova_range r;
    std::memcpy(
        &r, reinterpret_cast<const void*>(cmd.allowed_iovas + i * sizeof(r)),
        sizeof(r));
    if (r.start >= r.last) return -EINVAL;
    for (const IovaSpan& s : allowed) {
      if (s.start <= r.last && r.start <= s.last) return -EINVAL;
    }
    allowed.push_back({r.start, r.last});
  }
  return ioas->iopt.SetAllowed(std::move(allowed));
}

int IommufdCtx::Impl::CmdIoasIovaRanges(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_ioas_iova_ranges>(uc);
  if (cmd.__reserved != 0) return -EOPNOTSUPP;
  IommufdIoas* ioas = FindIoas(cmd.ioas_id);
  if (ioas == nullptr) return -ENOENT;
  const uint32_t max_iovas = cmd.num_iovas;
  cmd.num_iovas = 0;
  for (const IovaSpan& s : ioas->iopt.UsableRanges()) {
    if (cmd.num_iovas < max_iovas) {
      if (cmd.allowed_iovas == 0) return -EFAULT;
      const u::iommu_iova_range r{s.start, s.last};
      std::memcpy(reinterpret_cast<void*>(cmd.allowed_iovas +
                                          cmd.num_iovas * sizeof(r)),
                  &r, sizeof(r));
    }
    ++cmd.num_iovas;
  }
  cmd.out_iova_alignment = ioas->iopt.alignment();
  Respond(uc);
  return cmd.num_iovas > max_iovas ? -EMSGSIZE : 0;
}

int IommufdCtx::Impl::CmdIoasMap(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_ioas_map>(uc);
  if ((cmd.flags & ~kMapFlagsAll) || cmd.__reserved) return -EOPNOTSUPP;
  if (cmd.iova >= UINT64_MAX || cmd.length >= UINT64_MAX) return -EOVERFLOW;
  if (!(cmd.flags & (u::kIoasMapWriteable | u::kIoasMapReadable))) {
    return -EINVAL;
  }
  IommufdIoas* ioas = FindIoas(cmd.ioas_id);
  if (ioas == nullptr) return -ENOENT;
  if (cmd.length == 0) return -EINVAL;
  uint64_t end;
  if (__builtin_add_overflow(cmd.user_va, cmd.length, &end)) return -EOVERFLOW;
  if (cmd.length > UINT64_MAX - kIoptPageSize) return -EINVAL;
  auto pages = std::make_shared<IoptPages>();
  pages->uva = cmd.user_va;
  pages->length = cmd.length;
  pages->writable = (cmd.flags & u::kIoasMapWriteable) != 0;
  uint64_t iova = cmd.iova;
  int rc =
      ioas->iopt.Map({{pages, 0, cmd.length}}, IommufdPermFromFlags(cmd.flags),
                     (cmd.flags & u::kIoasMapFixedIova) != 0, &iova);
  if (rc < 0) return rc;
  cmd.iova = iova;
  return Respond(uc);
}

int IommufdCtx::Impl::CmdIoasMapFile(Ucmd& uc) {
  auto& cmd = Cmd<iommu_ioas_map_file>(uc);
  if (cmd.flags & ~kMapFlagsAll) return -EOPNOTSUPP;
  if (cmd.iova >= UINT64_MAX || cmd.length >= UINT64_MAX) return -EOVERFLOW;
  if (!(cmd.flags & (u::kIoasMapWriteable | u::kIoasMapReadable))) {
    return -EINVAL;
  }
  if (FindIoas(cmd.ioas_id) == nullptr) return -ENOENT;
  if (cmd.length == 0) return -EINVAL;
  uint64_t last;
  if (__builtin_add_overflow(cmd.start, cmd.length - 1, &last)) {
    return -EOVERFLOW;
  }
  // The model has no file table: every fd is unknown to fget.
  return -EBADF;
}

int IommufdCtx::Impl::CmdIoasCopy(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_ioas_copy>(uc);
  if (cmd.flags & ~kMapFlagsAll) return -EOPNOTSUPP;
  if (cmd.length >= UINT64_MAX || cmd.src_iova >= UINT64_MAX ||
      cmd.dst_iova >= UINT64_MAX) {
    return -EOVERFLOW;
  }
  if (!(cmd.flags & (u::kIoasMapWriteable | u::kIoasMapReadable))) {
    return -EINVAL;
  }
  IommufdIoas* src = FindIoas(cmd.src_ioas_id);
  if (src == nullptr) return -ENOENT;
  std::vector<IoptPagesSlice> slices;
  if (int rc = src->iopt.GetPages(cmd.src_iova, cmd.length, &slices); rc < 0) {
    return rc;
  }
  IommufdIoas* dst = FindIoas(cmd.dst_ioas_id);
  if (dst == nullptr) return -ENOENT;
  uint64_t iova = cmd.dst_iova;
  int rc = dst->iopt.Map(slices, IommufdPermFromFlags(cmd.flags),
                         (cmd.flags & u::kIoasMapFixedIova) != 0, &iova);
  if (rc < 0) return rc;
  cmd.dst_iova = iova;
  return Respond(uc);
}

int IommufdCtx::Impl::CmdIoasUnmap(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_ioas_unmap>(uc);
  IommufdIoas* ioas = FindIoas(cmd.ioas_id);
  if (ioas == nullptr) return -ENOENT;
  uint64_t unmapped = 0;
  int rc;
  if (cmd.iova == 0 && cmd.length == UINT64_MAX) {
    rc = ioas->iopt.UnmapRange(0, UINT64_MAX, &unmapped);
    if (rc == -ENOENT) rc = 0;
  } else {
    if (cmd.iova >= UINT64_MAX || cmd.length >= UINT64_MAX) return -EOVERFLOW;
    if (cmd.length == 0) return -EINVAL;
    uint64_t last;
    if (__builtin_add_overflow(cmd.iova, cmd.length - 1, &last)) {
      return -EOVERFLOW;
    }
    rc = ioas->iopt.UnmapRange(cmd.iova, last, &unmapped);
  }
  if (rc < 0) return rc;  // the length is not written back on error
  cmd.length = unmapped;
  return Respond(uc);
}

int IommufdCtx::Impl::CmdOption(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_option>(uc);
  if (cmd.__reserved != 0) return -EOPNOTSUPP;
  int rc;
  if (cmd.option_id == u::kIommuOptionRlimitMode) {
    if (cmd.object_id != 0) return -EOPNOTSUPP;
    if (cmd.op == u::kIommuOptionOpGet) {
      cmd.val64 = account_per_mm_ ? 1 : 0;
      rc = 0;
    } else if (cmd.op == u::kIommuOptionOpSet) {
      if (!options_.cap_sys_resource) return -EPERM;
      if (!objects_.empty()) return -EBUSY;
      if (cmd.val64 > 1) return -EINVAL;
      account_per_mm_ = cmd.val64 == 1;
      rc = 0;
    } else {
      return -EOPNOTSUPP;
    }
  } else if (cmd.option_id == u::kIommuOptionHugePages) {
    IommufdIoas* ioas = FindIoas(cmd.object_id);
    if (ioas == nullptr) return -ENOENT;
    if (cmd.op == u::kIommuOptionOpGet) {
      cmd.val64 = ioas->iopt.large_pages_disabled() ? 0 : 1;
      rc = 0;
    } else if (cmd.op == u::kIommuOptionOpSet) {
      if (cmd.val64 == 0) {
        rc = ioas->iopt.DisableLargePages();
      } else if (cmd.val64 == 1) {
        ioas->iopt.EnableLargePages();
        rc = 0;
      } else {
        rc = -EINVAL;
      }
    } else {
      return -EOPNOTSUPP;
    }
  } else {
    return -EOPNOTSUPP;
  }
  if (rc < 0) return rc;
  // Only val64 is copied back.
  std::memcpy(
      reinterpret_cast<uint8_t*>(uc.ubuffer) + offsetof(u::iommu_option, val64),
      &cmd.val64, sizeof(cmd.val64));
  return 0;
}

int IommufdCtx::Impl::CmdVfioIoas(Ucmd& uc) {
  auto& cmd = Cmd<u::iommu_vfio_ioas>(uc);
  if (cmd.__reserved != 0) return -EOPNOTSUPP;
  switch (cmd.op) {
    case u::kIommuVfioIoasGet:
      if (compat_ioas_ == nullptr) return -ENODEV;
      cmd.ioas_id = compat_ioas_->id;
      return Respond(uc);
    case u::kIommuVfioIoasSet: {
      IommufdIoas* ioas = FindIoas(cmd.ioas_id);
      if (ioas == nullptr) return -ENOENT;
      compat_ioas_ = ioas;
      return 0;
    }
    case u::kIommuVfioIoasClear:
      compat_ioas_ = nullptr;
      return 0;
    default:
      return -EOPNOTSUPP;
  }
}

// ---- IommufdCtx forwarding
// -------------------------------------------------------

IommufdCtx::IommufdCtx(ProcessMemory* memory, IommufdCtxOptions options)
    : impl_(std::make_unique<Impl>(memory, options)) {}

IommufdCtx::~IommufdCtx() = default;

int IommufdCtx::Ioctl(unsigned long request, uintptr_t arg) {
  return impl_->Ioctl(request, arg);
}

size_t IommufdCtx::object_count() const { return impl_->objects_.size(); }

std::vector<uint32_t> IommufdCtx::IoasIds() const {
  std::vector<uint32_t> ids;
  for (const auto& [id, obj] : impl_->objects_) {
    if (obj->type == IommufdObjType::kIoas) ids.push_back(id);
  }
  return ids;
}

int64_t IommufdCtx::IoasAreaCount(uint32_t ioas_id) const {
  const IommufdIoas* ioas = impl_->FindIoas(ioas_id);
  if (ioas == nullptr) return -ENOENT;
  return static_cast<int64_t>(ioas->iopt.area_count());
}

}  // namespace viommu::vfio::model
