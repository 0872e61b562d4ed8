#include "tests/host/differential.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace viommu::vfio::difftest {

namespace {

constexpr uint8_t kFill = 0xa5;

std::string Vaddr(uint64_t vaddr, uint64_t base) {
  if (base == 0 || vaddr < base) return absl::StrFormat("0x%x", vaddr);
  return absl::StrFormat("buf+0x%x", vaddr - base);
}

}  // namespace

void DiffEnv::Section(std::string_view name) {
  Emit(absl::StrFormat("== %s", name));
}

void DiffEnv::Fail(std::string_view what) {
  ++failures;
  Emit(absl::StrFormat("# TEST PROGRAM ERROR: %s", what));
}

void DiffEnv::Emit(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string ErrnoName(int err) {
  switch (err) {
    case EPERM:
      return "EPERM";
    case ENOENT:
      return "ENOENT";
    case EIO:
      return "EIO";
    case ENXIO:
      return "ENXIO";
    case E2BIG:
      return "E2BIG";
    case EBADF:
      return "EBADF";
    case EAGAIN:
      return "EAGAIN";
    case ENOMEM:
      return "ENOMEM";
    case EACCES:
      return "EACCES";
    case EFAULT:
      return "EFAULT";
    case EBUSY:
      return "EBUSY";
    case EEXIST:
      return "EEXIST";
    case ENODEV:
      return "ENODEV";
    case EINVAL:
      return "EINVAL";
    case ENOTTY:
      return "ENOTTY";
    case ENOSPC:
      return "ENOSPC";
    case ERANGE:
      return "ERANGE";
    case ENOSYS:
      return "ENOSYS";
    case EOVERFLOW:
      return "EOVERFLOW";
    case EBADFD:
      return "EBADFD";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case EADDRINUSE:
      return "EADDRINUSE";
    case EMSGSIZE:
      return "EMSGSIZE";
    case EDEADLK:
      return "EDEADLK";
    default:
      return absl::StrFormat("E%d", err);
  }
}

std::string Rc(int rc, bool fd_result) {
  if (rc < 0) return "-" + ErrnoName(-rc);
  if (fd_result) return "fd";
  return absl::StrFormat("%d", rc);
}

std::string Hex(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  std::string s;
  s.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) absl::StrAppendFormat(&s, "%02x", p[i]);
  return s;
}

AnonBuffer::AnonBuffer(DiffEnv& env, uint64_t len) : len_(len) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    env.Fail(absl::StrFormat("mmap of %u bytes: %s", len, strerror(errno)));
    return;
  }
  std::memset(p, 0x5a, len);
  addr_ = reinterpret_cast<uint64_t>(p);
}

AnonBuffer::~AnonBuffer() {
  if (addr_ != 0) munmap(reinterpret_cast<void*>(addr_), len_);
}

int OpenPath(DiffEnv& env, std::string_view label, std::string_view path) {
  int fd = env.host->Open(path);
  env.Log("open %s -> %s", label, Rc(fd, true));
  return fd;
}

int OpenContainer(DiffEnv& env) {
  return OpenPath(env, "container", "/dev/vfio/vfio");
}

int OpenGroup(DiffEnv& env) { return OpenPath(env, "group", env.group_path); }

int CloseFd(DiffEnv& env, std::string_view label, int fd) {
  if (fd < 0) return 0;
  int rc = env.host->Close(fd);
  env.Log("close %s -> %s", label, Rc(rc));
  return rc;
}

int SetContainer(DiffEnv& env, int group, int container) {
  int c = container;
  int rc = env.host->Ioctl(group, uapi::kVfioGroupSetContainer, AsArg(&c));
  env.Log("GROUP_SET_CONTAINER -> %s", Rc(rc));
  return rc;
}

int UnsetContainer(DiffEnv& env, int group) {
  int rc = env.host->Ioctl(group, uapi::kVfioGroupUnsetContainer, 0);
  env.Log("GROUP_UNSET_CONTAINER -> %s", Rc(rc));
  return rc;
}

int SetIommu(DiffEnv& env, int container, unsigned long type) {
  int rc = env.host->Ioctl(container, uapi::kVfioSetIommu, type);
  env.Log("SET_IOMMU %u -> %s", type, Rc(rc));
  return rc;
}

int CheckExtension(DiffEnv& env, int container, unsigned long ext) {
  int rc = env.host->Ioctl(container, uapi::kVfioCheckExtension, ext);
  env.Log("CHECK_EXTENSION %u -> %s", ext, Rc(rc));
  return rc;
}

int GroupStatus(DiffEnv& env, int group) {
  uapi::vfio_group_status st{.argsz = sizeof(st), .flags = 0xa5a5a5a5};
  int rc = env.host->Ioctl(group, uapi::kVfioGroupGetStatus, AsArg(&st));
  env.Log("GROUP_GET_STATUS -> %s flags=0x%x", Rc(rc), st.flags);
  return rc;
}

int Map(DiffEnv& env, int container, uint64_t iova, uint64_t size,
        uint64_t vaddr, uint32_t flags, uint64_t base, uint32_t argsz) {
  uapi::vfio_iommu_type1_dma_map m{.argsz = argsz,
                                   .flags = flags,
                                   .vaddr = vaddr,
                                   .iova = iova,
                                   .size = size};
  int rc = env.host->Ioctl(container, uapi::kVfioIommuMapDma, AsArg(&m));
  std::string extra =
      argsz == sizeof(m) ? "" : absl::StrFormat(" argsz=%u", argsz);
  env.Log("MAP iova=0x%x size=0x%x vaddr=%s flags=0x%x%s -> %s", iova, size,
          Vaddr(vaddr, base), flags, extra, Rc(rc));
  return rc;
}

int Unmap(DiffEnv& env, int container, uint64_t iova, uint64_t size,
          uint32_t flags, uint32_t argsz) {
  // Room for a vfio_bitmap after the struct, in case flags ask for one.
  struct {
    uapi::vfio_iommu_type1_dma_unmap u;
    uapi::vfio_bitmap bitmap;
  } arg{};
  arg.u = {.argsz = argsz, .flags = flags, .iova = iova, .size = size};
  int rc = env.host->Ioctl(container, uapi::kVfioIommuUnmapDma, AsArg(&arg));
  std::string extra =
      argsz == sizeof(arg.u) ? "" : absl::StrFormat(" argsz=%u", argsz);
  env.Log("UNMAP iova=0x%x size=0x%x flags=0x%x%s -> %s size=0x%x", iova, size,
          flags, extra, Rc(rc), arg.u.size);
  return rc;
}

int GetInfo(DiffEnv& env, int container, uint32_t argsz) {
  std::vector<uint8_t> buf(4096, kFill);
  std::memcpy(buf.data(), &argsz, sizeof(argsz));
  int rc =
      env.host->Ioctl(container, uapi::kVfioIommuGetInfo, AsArg(buf.data()));
  uapi::vfio_iommu_type1_info info;
  std::memcpy(&info, buf.data(), sizeof(info));
  env.Log(
      "GET_INFO argsz=%u -> %s argsz=%u flags=0x%x pgsizes=0x%x "
      "cap_offset=0x%x",
      argsz, Rc(rc), info.argsz, info.flags, info.iova_pgsizes,
      info.cap_offset);
  size_t raw = std::min<size_t>(std::max<size_t>(argsz, 24), 160);
  env.Log("  raw[%u]=%s", raw, Hex(buf.data(), raw));
  if (rc < 0 || info.cap_offset == 0 || info.cap_offset == 0xa5a5a5a5) {
    return rc;
  }
  // Walk the chain inside what the caller provided.
  uint32_t off = info.cap_offset;
  for (int n = 0; off != 0 && n < 8; ++n) {
    if (off + sizeof(uapi::vfio_info_cap_header) > argsz ||
        off + sizeof(uapi::vfio_info_cap_header) > buf.size()) {
      env.Log("  cap@%u outside argsz", off);
      break;
    }
    uapi::vfio_info_cap_header h;
    std::memcpy(&h, buf.data() + off, sizeof(h));
    std::string body;
    const uint8_t* p = buf.data() + off;
    if (h.id == uapi::kIommuTypeCapIovaRange && off + 16 <= buf.size()) {
      uapi::vfio_iommu_type1_info_cap_iova_range r;
      std::memcpy(&r, p, sizeof(r));
      body = absl::StrFormat("IOVA_RANGE nr=%u", r.nr_iovas);
      for (uint32_t i = 0; i < r.nr_iovas && i < 8; ++i) {
        uapi::vfio_iova_range range;
        size_t at = off + 16 + i * sizeof(range);
        if (at + sizeof(range) > buf.size()) break;
        std::memcpy(&range, buf.data() + at, sizeof(range));
        absl::StrAppendFormat(&body, " [0x%x,0x%x]", range.start, range.end);
      }
    } else if (h.id == uapi::kIommuTypeCapMigration && off + 32 <= buf.size()) {
      uapi::vfio_iommu_type1_info_cap_migration m;
      std::memcpy(&m, p, sizeof(m));
      body =
          absl::StrFormat("MIGRATION flags=0x%x pgsizes=0x%x max_bitmap=0x%x",
                          m.flags, m.pgsize_bitmap, m.max_dirty_bitmap_size);
    } else if (h.id == uapi::kIommuTypeCapDmaAvail && off + 12 <= buf.size()) {
      uapi::vfio_iommu_type1_info_dma_avail a;
      std::memcpy(&a, p, sizeof(a));
      body = absl::StrFormat("DMA_AVAIL avail=%u", a.avail);
    } else {
      body = "unknown";
    }
    env.Log("  cap@%u id=%u v%u next=%u %s", off, h.id, h.version, h.next,
            body);
    off = h.next;
  }
  return rc;
}

bool Setup(DiffEnv& env, int* container, int* group, unsigned long type) {
  *container = OpenContainer(env);
  *group = OpenGroup(env);
  if (*container < 0 || *group < 0) return false;
  if (SetContainer(env, *group, *container) < 0) return false;
  return SetIommu(env, *container, type) == 0;
}

void Teardown(DiffEnv& env, int container, int group) {
  CloseFd(env, "group", group);
  CloseFd(env, "container", container);
}

}  // namespace viommu::vfio::difftest
