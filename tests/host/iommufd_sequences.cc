// The iommufd operation sequences of type1_differential --sequences=iommufd:
// /dev/iommu objects and IOAS operations, the VFIO device cdev (bind,
// attach, replace, detach), HWPT_PAGING, reserved regions and the domain
// aperture, non-GUP memory, OPTION and VFIO compat on /dev/iommu. Each opens
// fresh fds and closes what it opened.
#include "tests/host/iommufd_sequences.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace viommu::vfio::difftest {

namespace {

using uapi::kIoasMapFixedIova;
using uapi::kIoasMapReadable;
using uapi::kIoasMapWriteable;

constexpr uint64_t k2M = 0x200000;
constexpr uint64_t kAll = ~uint64_t{0};
constexpr uint32_t kRd = kIoasMapReadable;
constexpr uint32_t kRdWr = kIoasMapReadable | kIoasMapWriteable;
constexpr uint32_t kFixed = kIoasMapFixedIova | kRdWr;

// _IOR(';', nr, size): a number whose slot exists but whose full value
// does not match.
constexpr unsigned long IorNr(unsigned nr, unsigned size) {
  return (2ul << 30) | (static_cast<unsigned long>(size) << 16) | 0x3b00u | nr;
}

// Anonymous read/write memory at a 2 MiB aligned address (so the automatic
// IOVA alignment, min(roundup_pow2(len), lowest bit of the vaddr), depends
// on the length only), every page written.
class AlignedBuffer {
 public:
  AlignedBuffer(DiffEnv& env, uint64_t len) : len_(len), raw_len_(len + k2M) {
    void* p = mmap(nullptr, raw_len_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      env.Fail(absl::StrFormat("mmap of %u bytes: %s", raw_len_,
                               strerror(errno)));
      return;
    }
    raw_ = reinterpret_cast<uint64_t>(p);
    addr_ = (raw_ + k2M - 1) & ~(k2M - 1);
    std::memset(reinterpret_cast<void*>(addr_), 0x5a, len_);
  }
  ~AlignedBuffer() {
    if (raw_ != 0) munmap(reinterpret_cast<void*>(raw_), raw_len_);
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  uint64_t at(uint64_t off) const { return addr_ + off; }
  uint64_t base() const { return addr_; }
  // Makes [off, off+len) read-only (or unmapped with `unmap`).
  void Protect(DiffEnv& env, uint64_t off, uint64_t len, bool unmap) {
    void* p = reinterpret_cast<void*>(addr_ + off);
    if ((unmap ? munmap(p, len) : mprotect(p, len, PROT_READ)) != 0) {
      env.Fail(absl::StrFormat("munmap/mprotect: %s", strerror(errno)));
    }
  }

 private:
  uint64_t len_;
  uint64_t raw_len_;
  uint64_t raw_ = 0;
  uint64_t addr_ = 0;
};

std::string Va(uint64_t va, uint64_t base) {
  if (base == 0 || va < base) return absl::StrFormat("0x%x", va);
  return absl::StrFormat("buf+0x%x", va - base);
}

// ---- Logged /dev/iommu operations ------------------------------------------

int OpenIommufd(DiffEnv& env) { return OpenPath(env, "/dev/iommu", "/dev/iommu"); }

uint32_t IoasAlloc(DiffEnv& env, int f, uint32_t flags = 0) {
  uapi::iommu_ioas_alloc a{.size = sizeof(a), .flags = flags};
  int rc = env.host->Ioctl(f, uapi::kIommuIoasAlloc, AsArg(&a));
  env.Log("IOAS_ALLOC flags=0x%x -> %s id=%u", flags, Rc(rc), a.out_ioas_id);
  return rc == 0 ? a.out_ioas_id : 0;
}

int Destroy(DiffEnv& env, int f, uint32_t id) {
  uapi::iommu_destroy d{.size = sizeof(d), .id = id};
  int rc = env.host->Ioctl(f, uapi::kIommuDestroy, AsArg(&d));
  env.Log("DESTROY id=%u -> %s", id, Rc(rc));
  return rc;
}

int IoasMap(DiffEnv& env, int f, uint32_t ioas, uint32_t flags, uint64_t va,
            uint64_t len, uint64_t iova, uint64_t base,
            uint64_t* iova_out = nullptr, uint32_t reserved = 0) {
  uapi::iommu_ioas_map m{.size = sizeof(m),
                         .flags = flags,
                         .ioas_id = ioas,
                         .__reserved = reserved,
                         .user_va = va,
                         .length = len,
                         .iova = iova};
  int rc = env.host->Ioctl(f, uapi::kIommuIoasMap, AsArg(&m));
  env.Log("IOAS_MAP ioas=%u flags=0x%x va=%s len=0x%x iova=0x%x%s -> %s "
          "iova=0x%x",
          ioas, flags, Va(va, base), len, iova,
          reserved != 0 ? " reserved=1" : "", Rc(rc), m.iova);
  if (iova_out != nullptr) *iova_out = m.iova;
  return rc;
}

int IoasUnmap(DiffEnv& env, int f, uint32_t ioas, uint64_t iova,
              uint64_t len) {
  uapi::iommu_ioas_unmap u{
      .size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len};
  int rc = env.host->Ioctl(f, uapi::kIommuIoasUnmap, AsArg(&u));
  env.Log("IOAS_UNMAP ioas=%u iova=0x%x len=0x%x -> %s length=0x%x", ioas,
          iova, len, Rc(rc), u.length);
  return rc;
}

int IoasCopy(DiffEnv& env, int f, uint32_t dst, uint32_t src, uint32_t flags,
             uint64_t len, uint64_t dst_iova, uint64_t src_iova) {
  uapi::iommu_ioas_copy c{.size = sizeof(c),
                          .flags = flags,
                          .dst_ioas_id = dst,
                          .src_ioas_id = src,
                          .length = len,
                          .dst_iova = dst_iova,
                          .src_iova = src_iova};
  int rc = env.host->Ioctl(f, uapi::kIommuIoasCopy, AsArg(&c));
  env.Log("IOAS_COPY dst=%u src=%u flags=0x%x len=0x%x dst_iova=0x%x "
          "src_iova=0x%x -> %s dst_iova=0x%x",
          dst, src, flags, len, dst_iova, src_iova, Rc(rc), c.dst_iova);
  return rc;
}

int IovaRanges(DiffEnv& env, int f, uint32_t ioas, uint32_t capacity,
               uint32_t reserved = 0) {
  std::vector<uapi::iommu_iova_range> r(8, {0xa5a5, 0xa5a5});
  uapi::iommu_ioas_iova_ranges q{.size = sizeof(q),
                                 .ioas_id = ioas,
                                 .num_iovas = capacity,
                                 .__reserved = reserved,
                                 .allowed_iovas = AsArg(r.data())};
  int rc = env.host->Ioctl(f, uapi::kIommuIoasIovaRanges, AsArg(&q));
  std::string ranges;
  for (uint32_t i = 0; i < capacity && i < r.size(); ++i) {
    if (r[i].start == 0xa5a5 && r[i].last == 0xa5a5) break;
    absl::StrAppendFormat(&ranges, " [0x%x,0x%x]", r[i].start, r[i].last);
  }
  env.Log("IOVA_RANGES ioas=%u cap=%u%s -> %s num=%u align=0x%x%s", ioas,
          capacity, reserved != 0 ? " reserved=1" : "", Rc(rc), q.num_iovas,
          q.out_iova_alignment, ranges);
  return rc;
}

int AllowIovas(DiffEnv& env, int f, uint32_t ioas,
               std::vector<uapi::iommu_iova_range> ranges) {
  uapi::iommu_ioas_allow_iovas a{
      .size = sizeof(a),
      .ioas_id = ioas,
      .num_iovas = static_cast<uint32_t>(ranges.size()),
      .allowed_iovas = AsArg(ranges.data())};
  int rc = env.host->Ioctl(f, uapi::kIommuIoasAllowIovas, AsArg(&a));
  std::string text;
  for (const auto& r : ranges) {
    absl::StrAppendFormat(&text, " [0x%x,0x%x]", r.start, r.last);
  }
  env.Log("ALLOW_IOVAS ioas=%u%s -> %s", ioas, ranges.empty() ? " none" : text,
          Rc(rc));
  return rc;
}

int Option(DiffEnv& env, int f, uint32_t option, uint16_t op, uint32_t object,
           uint64_t val, uint16_t reserved = 0) {
  uapi::iommu_option o{.size = sizeof(o),
                       .option_id = option,
                       .op = op,
                       .__reserved = reserved,
                       .object_id = object,
                       .val64 = val};
  int rc = env.host->Ioctl(f, uapi::kIommuOption, AsArg(&o));
  env.Log("OPTION id=%u op=%u object=%u val=%u%s -> %s val=%u", option, op,
          object, val, reserved != 0 ? " reserved=1" : "", Rc(rc), o.val64);
  return rc;
}

int VfioIoas(DiffEnv& env, int f, uint16_t op, uint32_t id) {
  uapi::iommu_vfio_ioas v{.size = sizeof(v), .ioas_id = id, .op = op};
  int rc = env.host->Ioctl(f, uapi::kIommuVfioIoas, AsArg(&v));
  env.Log("VFIO_IOAS op=%u id=%u -> %s id=%u", op, id, Rc(rc), v.ioas_id);
  return rc;
}

uint32_t HwptAlloc(DiffEnv& env, int f, uint32_t flags, uint32_t dev,
                   uint32_t pt, uint32_t size = sizeof(uapi::iommu_hwpt_alloc),
                   uint32_t reserved = 0) {
  uapi::iommu_hwpt_alloc h{.size = size,
                           .flags = flags,
                           .dev_id = dev,
                           .pt_id = pt,
                           .__reserved = reserved};
  int rc = env.host->Ioctl(f, uapi::kIommuHwptAlloc, AsArg(&h));
  env.Log("HWPT_ALLOC flags=0x%x dev=%u pt=%u size=%u%s -> %s id=%u", flags,
          dev, pt, size, reserved != 0 ? " reserved=1" : "", Rc(rc),
          h.out_hwpt_id);
  return rc == 0 ? h.out_hwpt_id : 0;
}

// ---- Logged VFIO cdev operations -------------------------------------------

int OpenCdev(DiffEnv& env) {
  absl::StatusOr<HostPciAddress> bdf = HostPciAddress::Parse(env.bdf);
  absl::StatusOr<std::string> path =
      bdf.ok() ? env.host->DeviceCdevPath(*bdf) : bdf.status();
  if (!path.ok()) {
    env.Fail(absl::StrFormat("no cdev for %s: %s", env.bdf,
                             path.status().ToString()));
    return -1;
  }
  env.Info("cdev %s", *path);
  return OpenPath(env, "cdev", *path);
}

// BIND_IOMMUFD; returns the devid (0 on failure).
uint32_t Bind(DiffEnv& env, int cdev, int iommufd, uint32_t argsz = 24,
              uint32_t flags = 0, uint8_t tail = 0) {
  uint8_t buf[40] = {};
  uapi::vfio_device_bind_iommufd b{
      .argsz = argsz, .flags = flags, .iommufd = iommufd};
  std::memcpy(buf, &b, sizeof(b));
  buf[sizeof(b)] = tail;
  int rc = env.host->Ioctl(cdev, uapi::kVfioDeviceBindIommufd, AsArg(buf));
  std::memcpy(&b, buf, sizeof(b));
  env.Log("BIND_IOMMUFD argsz=%u flags=0x%x%s -> %s devid=%u", argsz, flags,
          tail != 0 ? " tail=1" : "", Rc(rc), b.out_devid);
  return rc == 0 ? b.out_devid : 0;
}

// ATTACH_IOMMUFD_PT; returns the pt_id written back (0 on failure).
uint32_t Attach(DiffEnv& env, int cdev, uint32_t pt, uint32_t argsz = 16,
                uint32_t flags = 0) {
  uapi::vfio_device_attach_iommufd_pt a{
      .argsz = argsz, .flags = flags, .pt_id = pt};
  int rc = env.host->Ioctl(cdev, uapi::kVfioDeviceAttachIommufdPt, AsArg(&a));
  env.Log("ATTACH_IOMMUFD_PT pt=%u argsz=%u flags=0x%x -> %s pt_id=%u", pt,
          argsz, flags, Rc(rc), a.pt_id);
  return rc == 0 ? a.pt_id : 0;
}

int Detach(DiffEnv& env, int cdev, uint32_t argsz = 12, uint32_t flags = 0) {
  uapi::vfio_device_detach_iommufd_pt d{.argsz = argsz, .flags = flags};
  int rc = env.host->Ioctl(cdev, uapi::kVfioDeviceDetachIommufdPt, AsArg(&d));
  env.Log("DETACH_IOMMUFD_PT argsz=%u flags=0x%x -> %s", argsz, flags, Rc(rc));
  return rc;
}

int DeviceInfo(DiffEnv& env, int dev) {
  uapi::vfio_device_info info{.argsz = sizeof(info)};
  int rc = env.host->Ioctl(dev, uapi::kVfioDeviceGetInfo, AsArg(&info));
  env.Log("DEVICE_GET_INFO -> %s", Rc(rc));
  if (rc == 0) env.Info("device flags=0x%x regions=%u", info.flags, info.num_regions);
  return rc;
}

// ---- Sequences -------------------------------------------------------------

void DispatchAndLayouts(DiffEnv& env) {
  int f = OpenIommufd(env);
  // NULL argument: a table slot reads `size` first (EFAULT); anything past
  // the table goes to the VFIO compat handler (ENOTTY for unknown numbers).
  for (unsigned nr = 0x7e; nr <= 0x96; ++nr) {
    env.Log("ioctl nr=0x%x arg=NULL -> %s", nr,
            Rc(env.host->Ioctl(f, uapi::IoNr(nr), 0)));
  }
  uint8_t buf[32];
  auto alloc_raw = [&](const char* what, unsigned long req, uint32_t size,
                       uint32_t flags, uint8_t tail) {
    std::memset(buf, 0xa5, sizeof(buf));
    std::memcpy(buf, &size, 4);
    std::memcpy(buf + 4, &flags, 4);
    std::memset(buf + 12, 0, 4);
    buf[12] = tail;
    int rc = env.host->Ioctl(f, req, AsArg(buf));
    env.Log("IOAS_ALLOC %s size=%u flags=0x%x tail=%u -> %s bytes=%s", what,
            size, flags, tail, Rc(rc), Hex(buf, 20));
  };
  alloc_raw("_IOR number", IorNr(0x81, 12), 12, 0, 0);
  alloc_raw("short", uapi::kIommuIoasAlloc, 8, 0, 0);
  alloc_raw("unknown flag", uapi::kIommuIoasAlloc, 12, 1, 0);
  alloc_raw("exact", uapi::kIommuIoasAlloc, 12, 0, 0);
  alloc_raw("long, zero tail", uapi::kIommuIoasAlloc, 16, 0, 0);
  alloc_raw("long, non-zero tail", uapi::kIommuIoasAlloc, 16, 0, 1);
  CloseFd(env, "/dev/iommu", f);
}

void IoasIds(DiffEnv& env) {
  int f = OpenIommufd(env);
  for (int i = 0; i < 3; ++i) IoasAlloc(env, f);
  Destroy(env, f, 2);
  IoasAlloc(env, f);  // the lowest free id again
  Destroy(env, f, 0);
  Destroy(env, f, 99);
  for (uint32_t id = 1; id <= 3; ++id) Destroy(env, f, id);
  Destroy(env, f, 1);
  IoasAlloc(env, f);
  CloseFd(env, "/dev/iommu", f);
}

void IovaRangesAndAllow(DiffEnv& env) {
  AlignedBuffer buf(env, 0x400000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  uint32_t ioas = IoasAlloc(env, f);
  IovaRanges(env, f, ioas, 0);
  IovaRanges(env, f, ioas, 4);
  IovaRanges(env, f, ioas, 4, /*reserved=*/1);
  IovaRanges(env, f, 7, 4);
  AllowIovas(env, f, ioas, {{0x100000, 0x1fffff}, {0x400000, 0x7fffff}});
  IovaRanges(env, f, ioas, 4);  // allowed ranges do not narrow it
  AllowIovas(env, f, ioas, {{0x1000, 0x1000}});
  AllowIovas(env, f, ioas, {{0x100000, 0x2fffff}, {0x200000, 0x3fffff}});
  AllowIovas(env, f, 7, {{0x100000, 0x1fffff}});
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x10000, 0, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), k2M, 0, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x400000, 0, b);  // no room
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0x900000, b);
  AllowIovas(env, f, ioas, {});
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x1000, 0, b);
  IoasUnmap(env, f, ioas, 0, kAll);
  IoasUnmap(env, f, ioas, 0, kAll);
  CloseFd(env, "/dev/iommu", f);
}

void MapRules(DiffEnv& env) {
  AlignedBuffer buf(env, 0x400000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  uint32_t ioas = IoasAlloc(env, f);
  IoasMap(env, f, ioas, kFixed | 8, buf.at(0), 0x1000, 0x100000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0x100000, b, nullptr, 1);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, kAll, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x1000, kAll, b);  // not FIXED
  IoasMap(env, f, ioas, kFixed, buf.at(0), kAll, 0x100000, b);
  IoasMap(env, f, ioas, kIoasMapFixedIova, buf.at(0), 0x1000, 0x100000, b);
  IoasMap(env, f, ioas + 5, kFixed, buf.at(0), 0x1000, 0x100000, b);
  IoasMap(env, f, ioas, kFixed, kAll - 0xfff, 0x2000, 0x100000, 0);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0, 0x100000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, kAll - 0xfff, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x100000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0x108000, b);  // EEXIST
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0xff000, b);
  IoasMap(env, f, ioas, kRd, buf.at(0), 0x1000, 0, b);
  // Automatic IOVAs: alignment from the length and the vaddr's low bits.
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x3000, 0, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0x1000), 0x10000, 0, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x300000, 0, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0x800), 0x800, 0, b);  // sub-page
  IoasMap(env, f, ioas, kFixed, buf.at(0x800), 0x800, 0x600800, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), kAll / 2, 0, b);
  // Nothing is pinned without a domain: any vaddr is accepted.
  IoasMap(env, f, ioas, kFixed, 0x1000, 0x1000, 0x700000, 0);
  IovaRanges(env, f, ioas, 4);
  IoasUnmap(env, f, ioas, 0, kAll);
  CloseFd(env, "/dev/iommu", f);
}

void UnmapRules(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  uint32_t ioas = IoasAlloc(env, f);
  IoasUnmap(env, f, ioas, 0, kAll);  // empty: unmap-all succeeds
  IoasUnmap(env, f, ioas, 0x100000, 0x1000);  // nothing there
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x100000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x110000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x200000, b);
  IoasUnmap(env, f, ioas + 3, 0x100000, 0x1000);
  IoasUnmap(env, f, ioas, 0x104000, 0x1000);  // inside an area
  IoasUnmap(env, f, ioas, 0x100000, 0x8000);  // its head
  IoasUnmap(env, f, ioas, 0x100000, 0);
  IoasUnmap(env, f, ioas, kAll, 0x1000);
  IoasUnmap(env, f, ioas, 0x100000, kAll);
  IoasUnmap(env, f, ioas, 0xfffffffffffff000, 0x2000);
  // Partial failure: the first area goes, the second does not fit.
  IoasUnmap(env, f, ioas, 0x100000, 0x18000);
  IoasUnmap(env, f, ioas, 0x100000, 0x10000);
  IoasUnmap(env, f, ioas, 0x110000, 0x10000);
  // Over a hole and an area.
  IoasUnmap(env, f, ioas, 0x150000, 0x100000);
  IoasUnmap(env, f, ioas, 0, kAll);
  CloseFd(env, "/dev/iommu", f);
}

void CopyRules(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  uint32_t src = IoasAlloc(env, f);
  uint32_t dst = IoasAlloc(env, f);
  IoasMap(env, f, src, kFixed, buf.at(0), 0x10000, 0x100000, b);
  IoasMap(env, f, src, kFixed, buf.at(0x10000), 0x10000, 0x110000, b);
  IoasMap(env, f, src, kFixed, buf.at(0x40000), 0x10000, 0x140000, b);
  IoasCopy(env, f, dst, src, kFixed | 8, 0x1000, 0x400000, 0x100000);
  IoasCopy(env, f, dst, src, kFixed, kAll, 0x400000, 0x100000);
  IoasCopy(env, f, dst, src, kIoasMapFixedIova, 0x1000, 0x400000, 0x100000);
  IoasCopy(env, f, dst, 9, kFixed, 0x1000, 0x400000, 0x100000);
  IoasCopy(env, f, 9, src, kFixed, 0x1000, 0x400000, 0x100000);
  IoasCopy(env, f, dst, src, kFixed, 0, 0x400000, 0x100000);
  IoasCopy(env, f, dst, src, kFixed, 0x20000, 0x400000, 0x100000);  // 2 areas
  IoasCopy(env, f, dst, src, kFixed, 0x4000, 0x500000, 0x104000);  // sub-range
  IoasCopy(env, f, dst, src, kFixed, 0x40000, 0x600000, 0x110000);  // gap
  IoasCopy(env, f, dst, src, kFixed, 0x1000, 0x401000, 0x100000);  // EEXIST
  IoasCopy(env, f, dst, src, kRdWr, 0x8000, 0, 0x140000);           // auto
  IoasCopy(env, f, src, src, kFixed, 0x1000, 0x300000, 0x100000);  // same
  IovaRanges(env, f, dst, 4);
  IoasUnmap(env, f, dst, 0, kAll);
  IoasUnmap(env, f, src, 0, kAll);
  CloseFd(env, "/dev/iommu", f);
}

void CdevBindRules(DiffEnv& env) {
  int f = OpenIommufd(env);
  int cdev = OpenCdev(env);
  if (cdev < 0) return (void)CloseFd(env, "/dev/iommu", f);
  DeviceInfo(env, cdev);  // before BIND
  Bind(env, cdev, f, 8);
  Bind(env, cdev, -1);
  Bind(env, cdev, f, 24, 0x80000000);
  int c = OpenContainer(env);
  Bind(env, cdev, c);  // not an iommufd
  Bind(env, cdev, 999);  // no such fd
  // A non-zero tail past the struct: E2BIG on the newest kernels, ignored
  // (and bound) by 6.12.
  uint32_t dev = Bind(env, cdev, f, 32, 0, /*tail=*/1);
  if (dev == 0) dev = Bind(env, cdev, f, 32);  // zero tail
  Bind(env, cdev, f);                           // already bound
  int g = OpenGroup(env);                 // EBUSY while bound
  CloseFd(env, "group", g);
  DeviceInfo(env, cdev);
  Destroy(env, f, dev);  // a bound device is not the user's to destroy
  IoasAlloc(env, f);
  CloseFd(env, "cdev", cdev);  // unbinds
  Destroy(env, f, dev);
  g = OpenGroup(env);
  CloseFd(env, "group", g);
  CloseFd(env, "container", c);
  CloseFd(env, "/dev/iommu", f);
}

void AttachReplaceDetach(DiffEnv& env) {
  int f = OpenIommufd(env);
  uint32_t ioas1 = IoasAlloc(env, f);
  int cdev = OpenCdev(env);
  if (cdev < 0) return (void)CloseFd(env, "/dev/iommu", f);
  uint32_t dev = Bind(env, cdev, f);
  Detach(env, cdev);  // not attached: still 0
  Attach(env, cdev, ioas1, 8);
  Attach(env, cdev, ioas1, 16, 0x2);
  Attach(env, cdev, 99);
  Attach(env, cdev, dev);  // not a page table
  uint32_t hwpt1 = Attach(env, cdev, ioas1);
  IovaRanges(env, f, ioas1, 4);
  IovaRanges(env, f, ioas1, 1);
  Destroy(env, f, ioas1);
  Destroy(env, f, hwpt1);
  Attach(env, cdev, ioas1);  // again: the same auto hwpt
  uint32_t ioas2 = IoasAlloc(env, f);
  uint32_t hwpt2 = Attach(env, cdev, ioas2);  // replace
  IovaRanges(env, f, ioas1, 4);
  IovaRanges(env, f, ioas2, 4);
  Destroy(env, f, hwpt1);  // freed with its last device
  Attach(env, cdev, hwpt2);
  Detach(env, cdev);
  Detach(env, cdev);
  Detach(env, cdev, 4);
  Detach(env, cdev, 12, 0x4);
  IovaRanges(env, f, ioas2, 4);
  Destroy(env, f, hwpt2);
  Destroy(env, f, ioas2);
  Destroy(env, f, ioas1);
  CloseFd(env, "cdev", cdev);
  CloseFd(env, "/dev/iommu", f);
}

void HwptPaging(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  uint32_t ioas = IoasAlloc(env, f);
  int cdev = OpenCdev(env);
  if (cdev < 0) return (void)CloseFd(env, "/dev/iommu", f);
  uint32_t dev = Bind(env, cdev, f);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x100000, b);
  HwptAlloc(env, f, 0, dev, ioas, 16);
  HwptAlloc(env, f, 0, dev, ioas, 48, /*reserved=*/1);
  HwptAlloc(env, f, 0, 99, ioas);
  HwptAlloc(env, f, 0, ioas, ioas);
  HwptAlloc(env, f, 0, dev, 99);
  HwptAlloc(env, f, 0x100, dev, ioas);
  HwptAlloc(env, f, uapi::kHwptAllocDirtyTracking, dev, ioas);
  uint32_t hwpt = HwptAlloc(env, f, 0, dev, ioas);
  IovaRanges(env, f, ioas, 4);  // the domain's aperture only
  Attach(env, cdev, hwpt);
  IovaRanges(env, f, ioas, 4);  // and the device's regions
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x200000, b);
  Destroy(env, f, hwpt);
  Destroy(env, f, ioas);
  Detach(env, cdev);
  Destroy(env, f, hwpt);
  IovaRanges(env, f, ioas, 4);
  HwptAlloc(env, f, 0, dev, ioas, 24);  // the minimum size
  IoasUnmap(env, f, ioas, 0, kAll);
  CloseFd(env, "cdev", cdev);
  CloseFd(env, "/dev/iommu", f);
}

void ReservedAndAperture(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  uint32_t ioas = IoasAlloc(env, f);
  int cdev = OpenCdev(env);
  if (cdev < 0) return (void)CloseFd(env, "/dev/iommu", f);
  Bind(env, cdev, f);
  // Areas that an attach has to reserve around.
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0xfee00000, b);
  Attach(env, cdev, ioas);  // the MSI window holds an area
  IoasUnmap(env, f, ioas, 0xfee00000, 0x1000);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, uint64_t{1} << 39, b);
  Attach(env, cdev, ioas);  // an area past the aperture
  IoasUnmap(env, f, ioas, 0, kAll);
  IoasMap(env, f, ioas, kFixed, buf.at(0x800), 0x800, 0x300800, b);
  Attach(env, cdev, ioas);  // a sub-page area: the alignment cannot rise
  IoasUnmap(env, f, ioas, 0, kAll);
  AllowIovas(env, f, ioas, {{0xfe000000, 0xfeffffff}});
  Attach(env, cdev, ioas);  // an allowed range over the MSI window
  AllowIovas(env, f, ioas, {});
  Attach(env, cdev, ioas);
  IovaRanges(env, f, ioas, 4);
  // Fixed maps against the reserved ranges.
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0xfee00000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0xfeeff000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x2000, 0xfedff000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0xfedff000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0xfef00000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0x7ffffff000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x2000, 0x7ffffff000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, uint64_t{1} << 39, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x1000, 0, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0x800), 0x800, 0x400800, b);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x1000, 0, b);  // auto
  AllowIovas(env, f, ioas, {{0xfe000000, 0xffffffff}});
  AllowIovas(env, f, ioas, {{0x1000000, 0x1ffffff}});
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x1000, 0, b);  // auto, allowed
  AllowIovas(env, f, ioas, {});
  IoasUnmap(env, f, ioas, 0, kAll);
  Detach(env, cdev);
  IovaRanges(env, f, ioas, 4);
  CloseFd(env, "cdev", cdev);
  CloseFd(env, "/dev/iommu", f);
}

void NonGupMemory(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  buf.Protect(env, 0x10000, 0x10000, /*unmap=*/false);
  buf.Protect(env, 0x20000, 0x10000, /*unmap=*/true);
  int f = OpenIommufd(env);
  uint32_t ioas = IoasAlloc(env, f);
  int cdev = OpenCdev(env);
  if (cdev < 0) return (void)CloseFd(env, "/dev/iommu", f);
  Bind(env, cdev, f);
  uapi::vfio_region_info bar{};
  bool found = false;
  for (uint32_t i = 0; i < uapi::kPciNumRegions && !found; ++i) {
    uapi::vfio_region_info r{.argsz = sizeof(r), .index = i};
    if (env.host->Ioctl(cdev, uapi::kVfioDeviceGetRegionInfo, AsArg(&r)) == 0 &&
        (r.flags & uapi::kRegionInfoFlagMmap) && r.size >= 0x2000) {
      bar = r;
      found = true;
    }
  }
  env.Log("first mmap-able region found -> %s", found ? "yes" : "no");
  void* bar_va = nullptr;
  if (found) {
    env.Info("mmap-able region %u size=0x%x", bar.index, bar.size);
    absl::StatusOr<void*> p = env.host->Mmap(cdev, 0x2000, bar.offset);
    env.Log("mmap region 0x2000 -> %s", p.ok() ? "ok" : "error");
    if (p.ok()) bar_va = *p;
  }
  const auto bar_addr = reinterpret_cast<uint64_t>(bar_va);
  Attach(env, cdev, ioas);
  if (bar_va != nullptr) {
    IoasMap(env, f, ioas, kFixed, bar_addr, 0x2000, 0x40000000, bar_addr);
    IoasMap(env, f, ioas, kIoasMapFixedIova | kRd, bar_addr, 0x1000,
            0x40000000, bar_addr);
  }
  IoasMap(env, f, ioas, kFixed, buf.at(0x20000), 0x1000, 0x100000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0x10000), 0x1000, 0x100000, b);
  IoasMap(env, f, ioas, kIoasMapFixedIova | kRd, buf.at(0x10000), 0x1000,
          0x100000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0x1f000), 0x2000, 0x200000, b);
  IoasMap(env, f, ioas, kFixed, buf.at(0), 0x10000, 0x300000, b);
  IovaRanges(env, f, ioas, 4);
  Detach(env, cdev);
  // Without a domain nothing is pinned: the bad vaddrs are accepted and the
  // next attach fails to fill the domain.
  if (bar_va != nullptr) {
    IoasMap(env, f, ioas, kFixed, bar_addr, 0x2000, 0x40000000, bar_addr);
    Attach(env, cdev, ioas);
    IoasUnmap(env, f, ioas, 0x40000000, 0x2000);
  }
  IoasMap(env, f, ioas, kFixed, buf.at(0x20000), 0x1000, 0x500000, b);
  Attach(env, cdev, ioas);
  IoasUnmap(env, f, ioas, 0x500000, 0x1000);
  Attach(env, cdev, ioas);
  IoasUnmap(env, f, ioas, 0, kAll);
  Detach(env, cdev);
  if (bar_va != nullptr) env.host->Munmap(bar_va, 0x2000);
  CloseFd(env, "cdev", cdev);
  CloseFd(env, "/dev/iommu", f);
}

void OptionRules(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  using uapi::kIommuOptionHugePages;
  using uapi::kIommuOptionOpGet;
  using uapi::kIommuOptionOpSet;
  using uapi::kIommuOptionRlimitMode;
  int f = OpenIommufd(env);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpGet, 0, 7);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpSet, 0, 2);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpSet, 0, 1);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpGet, 0, 7);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpGet, 1, 7);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpSet, 0, 0);
  uint32_t ioas = IoasAlloc(env, f);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpSet, 0, 1);  // EBUSY
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpGet, ioas, 7);
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpGet, 0, 7);
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpSet, ioas, 2);
  IoasMap(env, f, ioas, kFixed, buf.at(0x800), 0x800, 0x100800, b);
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpSet, ioas, 0);
  IoasUnmap(env, f, ioas, 0, kAll);
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpSet, ioas, 0);
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpGet, ioas, 7);
  IoasMap(env, f, ioas, kRdWr, buf.at(0), 0x10000, 0, b);  // auto, no THP
  IovaRanges(env, f, ioas, 1);
  Option(env, f, kIommuOptionHugePages, kIommuOptionOpSet, ioas, 1);
  Option(env, f, 7, kIommuOptionOpGet, 0, 0);
  Option(env, f, kIommuOptionRlimitMode, 5, 0, 0);
  Option(env, f, kIommuOptionRlimitMode, kIommuOptionOpGet, 0, 0, 1);
  IoasUnmap(env, f, ioas, 0, kAll);
  CloseFd(env, "/dev/iommu", f);
}

void VfioCompatOnIommufd(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  using uapi::kIommuVfioIoasClear;
  using uapi::kIommuVfioIoasGet;
  using uapi::kIommuVfioIoasSet;
  int f = OpenIommufd(env);
  env.Log("GET_API_VERSION -> %s",
          Rc(env.host->Ioctl(f, uapi::kVfioGetApiVersion, 0)));
  for (unsigned long ext = 0; ext <= 10; ++ext) CheckExtension(env, f, ext);
  VfioIoas(env, f, kIommuVfioIoasGet, 0);
  VfioIoas(env, f, kIommuVfioIoasSet, 9);
  VfioIoas(env, f, 7, 0);
  SetIommu(env, f, uapi::kVfioType1v2Iommu);  // no compat IOAS
  GetInfo(env, f, sizeof(uapi::vfio_iommu_type1_info));
  Map(env, f, 0x100000, 0x10000, buf.at(0), kRw, b);
  uint32_t ioas = IoasAlloc(env, f);
  VfioIoas(env, f, kIommuVfioIoasSet, ioas);
  VfioIoas(env, f, kIommuVfioIoasGet, 0);
  CheckExtension(env, f, uapi::kVfioDmaCcIommu);
  SetIommu(env, f, uapi::kVfioSpaprTceIommu);
  SetIommu(env, f, uapi::kVfioType1v2Iommu);
  SetIommu(env, f, uapi::kVfioType1v2Iommu);  // repeatable
  Map(env, f, 0x100000, 0x10000, buf.at(0), kRw, b);
  Map(env, f, 0x108000, 0x1000, buf.at(0), kRw, b);  // EEXIST
  Map(env, f, 0x200000, 0x1000, buf.at(0), kRw | 4, b);  // VADDR flag
  Map(env, f, 0x200000, 0x1000, buf.at(0), 0, b);       // no R/W
  Map(env, f, 0x300000, 0x1000, buf.at(0), kRw, b, 24);  // short argsz
  Map(env, f, 0x300800, 0x800, buf.at(0x800), kRw, b);
  GetInfo(env, f, 16);
  GetInfo(env, f, 24);
  GetInfo(env, f, 4096);
  Unmap(env, f, 0x104000, 0x1000);  // bisect: ENOENT, size copied back
  Unmap(env, f, 0x100000, 0x10000, 0, 16);
  Unmap(env, f, 0x100000, 0x10000, 0x4);
  Unmap(env, f, 0x100000, 0x20000);
  Unmap(env, f, 0x100000, 0x1000);  // empty range
  Map(env, f, 0x100000, 0x10000, buf.at(0), kRw, b);
  Unmap(env, f, 0x1000, 0x1000, uapi::kDmaUnmapFlagAll);
  Unmap(env, f, 0, 0, uapi::kDmaUnmapFlagAll);
  env.Log("DIRTY_PAGES -> %s",
          Rc(env.host->Ioctl(f, uapi::kVfioIommuDirtyPages, 0)));
  // TYPE1 (v1) cuts areas at the range ends.
  SetIommu(env, f, uapi::kVfioType1Iommu);
  Map(env, f, 0x100000, 0x10000, buf.at(0), kRw, b);
  Unmap(env, f, 0x104000, 0x1000);
  IovaRanges(env, f, ioas, 4);
  Unmap(env, f, 0, 0, uapi::kDmaUnmapFlagAll);
  VfioIoas(env, f, kIommuVfioIoasClear, 0);
  VfioIoas(env, f, kIommuVfioIoasGet, 0);
  VfioIoas(env, f, kIommuVfioIoasSet, ioas);
  Destroy(env, f, ioas);  // clears the compat IOAS too
  VfioIoas(env, f, kIommuVfioIoasGet, 0);
  CloseFd(env, "/dev/iommu", f);
}

// The legacy group path with an iommufd as its container: the group is set
// to the ctx (a compat IOAS is made), GET_DEVICE_FD binds and attaches the
// device to it, VFIO MAP_DMA on the ctx maps into it.
void LegacyGroupOnIommufd(DiffEnv& env) {
  AlignedBuffer buf(env, 0x100000);
  const uint64_t b = buf.base();
  int f = OpenIommufd(env);
  int g = OpenGroup(env);
  GroupStatus(env, g);
  SetContainer(env, g, f);
  GroupStatus(env, g);
  SetContainer(env, g, f);  // twice
  VfioIoas(env, f, uapi::kIommuVfioIoasGet, 0);
  int d = env.host->Ioctl(g, uapi::kVfioGroupGetDeviceFd,
                          AsArg(env.bdf.c_str()));
  env.Log("GROUP_GET_DEVICE_FD bdf -> %s", Rc(d, true));
  if (d >= 0) DeviceInfo(env, d);
  IovaRanges(env, f, 1, 4);
  int cdev = OpenCdev(env);
  if (cdev >= 0) Bind(env, cdev, f);  // the group is open: EBUSY
  CloseFd(env, "cdev", cdev);
  SetIommu(env, f, uapi::kVfioType1v2Iommu);
  Map(env, f, 0x100000, 0x10000, buf.at(0), kRw, b);
  Map(env, f, 0xfee00000, 0x1000, buf.at(0), kRw, b);  // the MSI window
  GetInfo(env, f, 4096);
  Unmap(env, f, 0, 0, uapi::kDmaUnmapFlagAll);
  UnsetContainer(env, g);  // no EBUSY: the device holds its own binding
  GroupStatus(env, g);
  int c = OpenContainer(env);
  SetContainer(env, g, c);  // the device is still bound to the ctx
  CloseFd(env, "device", d);
  SetContainer(env, g, c);
  SetIommu(env, c, uapi::kVfioType1v2Iommu);
  Map(env, c, 0x100000, 0x10000, buf.at(0), kRw, b);
  UnsetContainer(env, g);
  CloseFd(env, "container", c);
  CloseFd(env, "group", g);
  CloseFd(env, "/dev/iommu", f);
}

}  // namespace

const std::vector<Sequence>& IommufdSequences() {
  static const auto* kSequences = new std::vector<Sequence>{
      {"iommufd_dispatch_and_layouts", DispatchAndLayouts},
      {"iommufd_ioas_ids", IoasIds},
      {"iommufd_iova_ranges_and_allow", IovaRangesAndAllow},
      {"iommufd_map_rules", MapRules},
      {"iommufd_unmap_rules", UnmapRules},
      {"iommufd_copy_rules", CopyRules},
      {"iommufd_cdev_bind_rules", CdevBindRules},
      {"iommufd_attach_replace_detach", AttachReplaceDetach},
      {"iommufd_hwpt_paging", HwptPaging},
      {"iommufd_reserved_and_aperture", ReservedAndAperture},
      {"iommufd_non_gup_memory", NonGupMemory},
      {"iommufd_option_rules", OptionRules},
      {"iommufd_vfio_compat", VfioCompatOnIommufd},
      {"iommufd_legacy_group", LegacyGroupOnIommufd},
  };
  return *kSequences;
}

}  // namespace viommu::vfio::difftest
