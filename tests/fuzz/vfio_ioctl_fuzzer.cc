// libFuzzer target: the type1 and iommufd models' ioctl surfaces through
// ModelHost's fd table (Open / Ioctl / Close, as the container layer and a
// VMM call them), on the default host platform with a small
// dma_entry_limit and a memlock limit so both limits are reachable.
//
// Byte 0: bits 0-1 the dma_entry_limit (4, 8, 64, 65535), bits 2-4 the
// memlock limit in pages (0 = unlimited, else 8 << n), bit 5
// KernelVersion::kLatest (else 6.1). Then steps: open a path (the real
// set plus unknown ones), close an fd, or an ioctl on an fd (open ones, or
// a stale/unknown number) with a request from the real set (or any nr)
// and an argument built for it: argsz/size at the edges (0, minsz - 1,
// minsz, the struct, the struct plus a tail, 4096), flags, iova/length at
// the edges of 2^64 (0, 2^64 - 1, wrapping iova + size, the MSI window,
// aperture ends), vaddrs in pinnable, read-only, PROT_NONE and device
// (PFNMAP) memory, capability buffers of random sizes, ids; bind / attach /
// detach of cdevs. Every user pointer the model follows points into
// buffers at least as large as the size the argument claims (the model
// does not emulate copy_from_user faults on unmapped memory), so argsz
// values above 4096 are not generated.
//
// Oracle (abort via __builtin_trap on failure, after printing):
//   * every answer is 0 or -errno from the set Linux can give for that
//     ioctl family (kAllowed below; reference/linux-vfio.md), positive only
//     for GET_API_VERSION (0), CHECK_EXTENSION (0/1) and GET_DEVICE_FD /
//     Open (an fd >= ModelHost::kFirstFd);
//   * accounting: locked_vm never exceeds the memlock limit and never
//     wraps; the type1 containers' charges never exceed it; per type1
//     container mapping_count <= dma_entry_limit and
//     mapping_count + dma_avail == dma_entry_limit;
//   * after closing every fd: no container or /dev/iommu fd, no device
//     with a DMA domain, locked_vm back to 0.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_input.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::fuzz {
namespace {

namespace u = uapi;
constexpr uint64_t kPage = 4096;
constexpr int kMaxSteps = 96;
constexpr size_t kMaxFds = 24;
constexpr size_t kArgBytes = 8192;  // the argument buffer
constexpr size_t kScratch = 4096;   // bitmaps, iova range arrays, tokens

using Input = ::viommu::fuzz::FuzzInput;

// Process memory the vaddrs point into, mapped once per process (the
// oracle never reads it; the model only classifies and pins it).
struct Memory {
  uint8_t* rw;    // 32 pages, pinnable
  uint8_t* ro;    // 4 pages, PROT_READ
  uint8_t* none;  // 4 pages, PROT_NONE (GUP fails)
  uint8_t* dev;   // 8 pages, registered as device memory per ModelHost
};

const Memory& Mem() {
  static const Memory m = [] {
    auto map = [](uint64_t pages, int prot) {
      void* p = mmap(nullptr, pages * kPage, prot, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
      if (p == MAP_FAILED) __builtin_trap();
      return static_cast<uint8_t*>(p);
    };
    Memory mem{map(32, PROT_READ | PROT_WRITE), map(4, PROT_READ),
               map(4, PROT_NONE), map(8, PROT_READ | PROT_WRITE)};
    return mem;
  }();
  return m;
}

uint64_t PickVaddr(Input& in) {
  const Memory& m = Mem();
  const uint8_t a = in.U8();
  const uint64_t page = (a >> 3) & 7;
  switch (a & 7) {
    case 0:
    case 1:
    case 2:
      return reinterpret_cast<uintptr_t>(m.rw) + ((a >> 3) & 31) * kPage;
    case 3:
      return reinterpret_cast<uintptr_t>(m.ro) + (page & 3) * kPage;
    case 4:
      return reinterpret_cast<uintptr_t>(m.none) + (page & 3) * kPage;
    case 5:
      return reinterpret_cast<uintptr_t>(m.dev) + page * kPage;
    case 6:
      return reinterpret_cast<uintptr_t>(m.rw) + 0x800;  // not page aligned
    default:
      return in.U64();
  }
}

uint64_t PickIova(Input& in) {
  static constexpr uint64_t kIovas[16] = {
      0,
      kPage,
      0x100000,
      0x200000,
      0xfee00000,  // MSI window
      0xfedff000,
      0x0f000000,  // 02:00.0's direct region
      (uint64_t{1} << 39) - kPage,
      (uint64_t{1} << 48) - kPage,
      uint64_t{1} << 48,
      UINT64_MAX,
      UINT64_MAX - kPage + 1,
      uint64_t{1} << 63,
      0x1000000,
      0x7ff,
      0,  // replaced by an arbitrary value
  };
  const uint8_t a = in.U8();
  if ((a & 15) == 15) return in.U64();
  return kIovas[a & 15] + static_cast<uint64_t>((a >> 4) & 7) * kPage;
}

uint64_t PickSize(Input& in) {
  static constexpr uint64_t kSizes[16] = {
      0,
      kPage,
      2 * kPage,
      4 * kPage,
      8 * kPage,
      0x200000,
      UINT64_MAX,
      UINT64_MAX - kPage + 1,
      uint64_t{1} << 63,
      0x800,
      0x1001,
      16 * kPage,
      32 * kPage,
      uint64_t{1} << 48,
      3 * kPage,
      0,  // replaced by an arbitrary value
  };
  const uint8_t a = in.U8();
  if ((a & 15) == 15) return in.U64();
  return kSizes[a & 15];
}

// argsz / size at the edges of the struct's minimum and full size.
uint32_t PickArgsz(Input& in, uint32_t minsz, uint32_t full) {
  const uint8_t a = in.U8();
  switch (a & 7) {
    case 0:
      return 0;
    case 1:
      return minsz > 0 ? minsz - 1 : 0;
    case 2:
      return minsz;
    case 3:
    case 4:
      return full;
    case 5:
      return full + 8;
    case 6:
      return kScratch;
    default:
      return a >> 3 << 2;  // 0..124
  }
}

const unsigned long kRequests[] = {
    u::kVfioGetApiVersion,
    u::kVfioCheckExtension,
    u::kVfioSetIommu,
    u::kVfioGroupGetStatus,
    u::kVfioGroupSetContainer,
    u::kVfioGroupUnsetContainer,
    u::kVfioGroupGetDeviceFd,
    u::kVfioDeviceGetInfo,
    u::kVfioDeviceGetRegionInfo,
    u::kVfioDeviceGetIrqInfo,
    u::kVfioDeviceReset,
    u::kVfioIommuGetInfo,
    u::kVfioIommuMapDma,
    u::kVfioIommuUnmapDma,
    u::kVfioIommuEnable,
    u::kVfioIommuDisable,
    u::kVfioIommuDirtyPages,
    u::kVfioDeviceBindIommufd,
    u::kVfioDeviceAttachIommufdPt,
    u::kVfioDeviceDetachIommufdPt,
    u::kIommuDestroy,
    u::kIommuIoasAlloc,
    u::kIommuIoasAllowIovas,
    u::kIommuIoasCopy,
    u::kIommuIoasIovaRanges,
    u::kIommuIoasMap,
    u::kIommuIoasUnmap,
    u::kIommuOption,
    u::kIommuVfioIoas,
    u::kIommuHwptAlloc,
    u::kIommuGetHwInfo,
};
constexpr size_t kNumRequests = sizeof(kRequests) / sizeof(kRequests[0]);

// The errnos Linux's vfio (container, group, device, type1) and iommufd
// ioctls can answer, and which of them only some requests can give.
bool Allowed(unsigned long request, int err) {
  switch (err) {
    case EPERM:
    case ENOENT:
    case EBADF:
    case ENOMEM:
    case EFAULT:
    case EBUSY:
    case EEXIST:
    case ENODEV:
    case EINVAL:
    case ENOSPC:
    case ENOTTY:
    case E2BIG:
    case EOVERFLOW:
    case EOPNOTSUPP:
    case EBADFD:
    case EADDRINUSE:
    case EACCES:
    case ERANGE:
    case ENXIO:
    case EIO:
      break;
    case EMSGSIZE:  // IOAS_IOVA_RANGES: more ranges than num_iovas holds
      return request == u::kIommuIoasIovaRanges;
    default:
      return false;
  }
  const unsigned nr = request & 0xff;
  const bool iommufd_nr = (request & ~0xffUL) == 0x3B00 && nr >= 0x80;
  const bool map_like =
      request == u::kVfioIommuMapDma || request == u::kIommuIoasMap ||
      request == u::kIommuIoasCopy || request == u::kVfioDeviceBindIommufd ||
      request == u::kVfioDeviceAttachIommufdPt ||
      request == u::kVfioGroupSetContainer ||
      // a group set to an iommufd binds and attaches
      // the device to the compat IOAS (EADDRINUSE)
      request == u::kVfioGroupGetDeviceFd || request == u::kVfioSetIommu ||
      request == u::kIommuVfioIoas || request == u::kIommuHwptAlloc;
  // E2BIG: iommufd's non-zero struct tail (and VFIO_DEVICE_* argsz checks
  // do not produce it).
  if (err == E2BIG && !iommufd_nr) return false;
  // ENOSPC / EEXIST / EADDRINUSE / ENOMEM come from creating mappings,
  // objects or attachments.
  if (err == ENOSPC && !map_like) return false;
  // EADDRINUSE also from ALLOW_IOVAS (a range over a reserved one) and
  // OPTION HUGE_PAGES=0 (areas misaligned to PAGE_SIZE).
  if (err == EADDRINUSE && !map_like && request != u::kIommuIoasAllowIovas &&
      request != u::kIommuOption) {
    return false;
  }
  if (err == EEXIST && !map_like && request != u::kIommuIoasAllowIovas) {
    return false;
  }
  return true;
}

class Program {
 public:
  Program(uint8_t mode)
      : host_(MakePlatform(mode),
              {.kernel = (mode & 0x20) ? model::KernelVersion::kLatest
                                       : model::KernelVersion::k6_1}),
        dma_limit_(host_.platform().dma_entry_limit) {
    const uint64_t n = (mode >> 2) & 7;
    memlock_ = n == 0 ? UINT64_MAX : uint64_t{8} << n;
    host_.process_memory().set_memlock_limit_pages(memlock_);
    host_.process_memory().AddDeviceMemory(
        reinterpret_cast<uintptr_t>(Mem().dev), 8 * kPage);
  }
  ~Program() {
    for (int fd : fds_) (void)host_.Close(fd);
    fds_.clear();
    CheckAccounting();
    if (!host_.ContainerFds().empty()) Fail("container fds after closing all");
    if (!host_.IommufdFds().empty()) Fail("iommufd fds after closing all");
    for (const HostDeviceDesc& d : host_.platform().devices) {
      if (host_.DeviceDmaDomain(d.address) != nullptr) {
        Fail("a device keeps a DMA domain after closing all");
      }
    }
    if (host_.locked_pages() != 0) {
      std::fprintf(stderr, "locked_vm %lu\n",
                   static_cast<unsigned long>(host_.locked_pages()));
      Fail("pages pinned after closing every fd");
    }
  }

  void Step(Input& in);

 private:
  static HostPlatform MakePlatform(uint8_t mode) {
    HostPlatform p = DefaultHostPlatform();
    static constexpr uint32_t kLimits[4] = {4, 8, 64, 65535};
    p.dma_entry_limit = kLimits[mode & 3];
    return p;
  }
  [[noreturn]] static void Fail(const char* why) {
    std::fprintf(stderr, "vfio_ioctl_fuzzer: oracle failure: %s\n", why);
    __builtin_trap();
  }
  int PickFd(Input& in) {
    const uint8_t a = in.U8();
    if (a >= 0xf0 || fds_.empty()) {
      return model::ModelHost::kFirstFd + (a & 31);  // maybe stale/unknown
    }
    return fds_[a % fds_.size()];
  }
  void Open(Input& in);
  void Ioctl(Input& in);
  void CheckAnswer(unsigned long request, int rc);
  void CheckAccounting();

  model::ModelHost host_;
  const uint64_t dma_limit_;
  uint64_t memlock_ = UINT64_MAX;
  std::vector<int> fds_;
  alignas(8) uint8_t arg_[kArgBytes];
  alignas(8) uint8_t scratch_[kScratch];
};

void Program::Open(Input& in) {
  static const char* const kPaths[] = {"/dev/vfio/vfio",
                                       "/dev/vfio/1",
                                       "/dev/vfio/2",
                                       "/dev/vfio/3",
                                       "/dev/iommu",
                                       "/dev/vfio/devices/vfio0",
                                       "/dev/vfio/devices/vfio1",
                                       "/dev/vfio/devices/vfio2",
                                       "/dev/vfio/9",
                                       "/dev/vfio/devices/vfio01",
                                       "/dev/vfio/devices/vfio3",
                                       "/dev/null"};
  const uint8_t a = in.U8();
  if (fds_.size() >= kMaxFds) return;
  const int fd = host_.Open(kPaths[a % (sizeof(kPaths) / sizeof(*kPaths))]);
  if (fd >= model::ModelHost::kFirstFd) {
    fds_.push_back(fd);
  } else if (fd >= 0 || (fd != -ENOENT && fd != -EBUSY && fd != -ENODEV &&
                         fd != -EINVAL && fd != -EPERM)) {
    std::fprintf(stderr, "open -> %d\n", fd);
    Fail("Open answered outside its errno set");
  }
}

void Program::CheckAnswer(unsigned long request, int rc) {
  if (rc >= 0) {
    if (rc == 0) return;
    if (request == u::kVfioCheckExtension && rc == 1) return;
    if (request == u::kVfioGroupGetDeviceFd &&
        rc >= model::ModelHost::kFirstFd) {
      if (fds_.size() < 64) {
        fds_.push_back(rc);
      } else {
        (void)host_.Close(rc);
      }
      return;
    }
    std::fprintf(stderr, "ioctl 0x%lx -> %d\n", request, rc);
    Fail("a positive answer where none is defined");
  }
  if (!Allowed(request, -rc)) {
    std::fprintf(stderr, "ioctl 0x%lx -> %d (%s)\n", request, rc,
                 std::strerror(-rc));
    Fail("an errno the kernel does not give for this ioctl");
  }
}

void Program::CheckAccounting() {
  const uint64_t locked = host_.locked_pages();
  if (locked > (uint64_t{1} << 40)) Fail("locked_vm wrapped below zero");
  if (locked > memlock_) {
    std::fprintf(stderr, "locked_vm %lu > limit %lu\n",
                 static_cast<unsigned long>(locked),
                 static_cast<unsigned long>(memlock_));
    Fail("locked_vm over RLIMIT_MEMLOCK");
  }
  uint64_t type1_locked = 0;
  for (int fd : host_.ContainerFds()) {
    absl::StatusOr<uint64_t> pages = host_.ContainerLockedPages(fd);
    absl::StatusOr<uint64_t> maps = host_.ContainerMappingCount(fd);
    if (!pages.ok() || !maps.ok()) Fail("a container fd without accounting");
    type1_locked += *pages;
    if (*maps > dma_limit_) Fail("more vfio_dma entries than the limit");
    if (const model::Type1Iommu* t = host_.ContainerIommu(fd)) {
      if (t->mapping_count() + t->dma_avail() != dma_limit_) {
        std::fprintf(stderr, "mappings %lu + dma_avail %u != %lu\n",
                     static_cast<unsigned long>(t->mapping_count()),
                     t->dma_avail(), static_cast<unsigned long>(dma_limit_));
        Fail("dma_avail accounting");
      }
    }
  }
  if (type1_locked > locked) Fail("type1 charges exceed locked_vm");
}

void Program::Ioctl(Input& in) {
  const int fd = PickFd(in);
  const uint8_t r = in.U8();
  unsigned long request;
  if (r >= 0xf8) {
    request = u::IoNr(in.U8());  // any nr of the VFIO/iommufd type
  } else if (r >= 0xf0) {
    request = in.U32();  // any request
  } else {
    request = kRequests[r % kNumRequests];
  }
  std::memset(arg_, 0, sizeof(arg_));
  auto put32 = [&](size_t off, uint32_t v) { std::memcpy(arg_ + off, &v, 4); };
  auto put64 = [&](size_t off, uint64_t v) { std::memcpy(arg_ + off, &v, 8); };
  const uintptr_t scratch = reinterpret_cast<uintptr_t>(scratch_);
  uintptr_t arg = reinterpret_cast<uintptr_t>(arg_);
  const uint8_t flags_byte = in.U8();
  uint32_t flags = flags_byte & 0x7f;
  if (flags_byte & 0x80) flags = in.U32();
  // A random "tail" byte past the struct for the E2BIG check.
  const bool tail = (flags_byte & 0x40) != 0;
  switch (request) {
    case u::kVfioGetApiVersion:
    case u::kVfioIommuEnable:
    case u::kVfioIommuDisable:
    case u::kVfioDeviceReset:
    case u::kVfioGroupUnsetContainer:
      arg = in.U8();
      break;
    case u::kVfioCheckExtension:
    case u::kVfioSetIommu:
      arg = in.U8() % 12;
      break;
    case u::kVfioGroupSetContainer: {
      const int cfd = PickFd(in);
      std::memcpy(arg_, &cfd, sizeof(cfd));
      break;
    }
    case u::kVfioGroupGetDeviceFd: {
      static const char* const kNames[] = {"0000:01:00.0", "0000:02:00.0",
                                           "0000:03:00.0", "01:00.0",
                                           "0000:09:00.0", ""};
      const char* n = kNames[in.U8() % 6];
      std::memcpy(arg_, n, std::strlen(n) + 1);
      break;
    }
    case u::kVfioIommuGetInfo:
    case u::kVfioGroupGetStatus:
    case u::kVfioDeviceGetInfo:
    case u::kVfioDeviceGetRegionInfo:
    case u::kVfioDeviceGetIrqInfo:
      // Capability chains: any argsz up to the buffer; poison the rest so
      // anything read back that was not written shows.
      std::memset(arg_, 0xa5, sizeof(arg_));
      put32(0, PickArgsz(in, 8, 24));
      put32(4, flags);
      put32(8, in.U8() % 10);  // region / irq index
      break;
    case u::kVfioIommuMapDma:
      put32(0, PickArgsz(in, 32, 32));
      put32(4, flags);
      put64(8, PickVaddr(in));
      put64(16, PickIova(in));
      put64(24, PickSize(in));
      break;
    case u::kVfioIommuUnmapDma:
      put32(0, PickArgsz(in, 24, 24 + 24));
      put32(4, flags);
      put64(8, PickIova(in));
      put64(16, PickSize(in));
      put64(24, kPage << (in.U8() & 3));                      // bitmap.pgsize
      put64(32, std::min<uint64_t>(in.U8() * 16, kScratch));  // bitmap.size
      put64(40, scratch);                                     // bitmap.data
      break;
    case u::kVfioIommuDirtyPages:
      put32(0, PickArgsz(in, 8, 48));
      put32(4, flags & 7);
      put64(8, PickIova(in));
      put64(16, PickSize(in));
      put64(24, kPage << (in.U8() & 3));
      put64(32, std::min<uint64_t>(in.U8() * 16, kScratch));
      put64(40, scratch);
      break;
    case u::kVfioDeviceBindIommufd:
      put32(0, PickArgsz(in, u::kBindIommufdMinsz, 24));
      put32(4, flags & 1);
      put32(8, static_cast<uint32_t>(PickFd(in)));
      put64(16, (in.U8() & 1) ? scratch : 0);  // token uuid
      break;
    case u::kVfioDeviceAttachIommufdPt:
      put32(0, PickArgsz(in, u::kAttachIommufdPtMinsz, 16));
      put32(4, flags & 1);
      put32(8, in.U8() % 8);  // pt_id
      put32(12, in.U8() & 1);
      break;
    case u::kVfioDeviceDetachIommufdPt:
      put32(0, PickArgsz(in, u::kDetachIommufdPtMinsz, 12));
      put32(4, flags & 1);
      put32(8, in.U8() & 1);
      break;
    case u::kIommuIoasMap:
      put32(0, PickArgsz(in, 40, 40));
      put32(4, flags & 0xf);
      put32(8, in.U8() % 8);  // ioas_id
      put64(16, PickVaddr(in));
      put64(24, PickSize(in));
      put64(32, PickIova(in));
      if (tail) arg_[40] = 1;
      break;
    case u::kIommuIoasCopy:
      put32(0, PickArgsz(in, 40, 40));
      put32(4, flags & 0xf);
      put32(8, in.U8() % 8);
      put32(12, in.U8() % 8);
      put64(16, PickSize(in));
      put64(24, PickIova(in));
      put64(32, PickIova(in));
      if (tail) arg_[40] = 1;
      break;
    case u::kIommuIoasUnmap:
      put32(0, PickArgsz(in, 24, 24));
      put32(4, in.U8() % 8);
      put64(8, PickIova(in));
      put64(16, PickSize(in));
      if (tail) arg_[24] = 1;
      break;
    case u::kIommuIoasAllowIovas:
    case u::kIommuIoasIovaRanges: {
      put32(0, PickArgsz(in, 24, request == u::kIommuIoasIovaRanges ? 32 : 24));
      put32(4, in.U8() % 8);
      // num_iovas: at most what the scratch buffer holds.
      put32(8, in.U8() % (kScratch / 16 + 1));
      put64(16, scratch);
      // Ranges for ALLOW_IOVAS: pairs from the iova picker.
      for (uint32_t i = 0; i < 4; ++i) {
        const uint64_t s = PickIova(in);
        const uint64_t l = s + PickSize(in) - 1;
        std::memcpy(scratch_ + 16 * i, &s, 8);
        std::memcpy(scratch_ + 16 * i + 8, &l, 8);
      }
      break;
    }
    case u::kIommuIoasAlloc:
      put32(0, PickArgsz(in, 12, 12));
      put32(4, flags & 1);
      if (tail) arg_[12] = 1;
      break;
    case u::kIommuDestroy:
      put32(0, PickArgsz(in, 8, 8));
      put32(4, in.U8() % 8);
      if (tail) arg_[8] = 1;
      break;
    case u::kIommuOption:
      put32(0, PickArgsz(in, 24, 24));
      put32(4, in.U8() % 3);
      put32(8, in.U8() % 3);  // op (u16) + reserved
      put32(12, in.U8() % 8);
      put64(16, in.U8() % 3);
      break;
    case u::kIommuVfioIoas:
      put32(0, PickArgsz(in, 12, 12));
      put32(4, in.U8() % 8);
      put32(8, in.U8() % 4);
      break;
    case u::kIommuHwptAlloc:
      put32(0, PickArgsz(in, 40, 44));
      put32(4, flags & 7);
      put32(8, in.U8() % 8);      // dev_id
      put32(12, in.U8() % 8);     // pt_id
      put32(24, in.U8() % 3);     // data_type
      put32(28, in.U8() & 0x3f);  // data_len
      put64(32, scratch);
      put32(40, in.U8() % 4);
      break;
    default: {
      // Generic: a size/argsz word, then small values.
      put32(0, PickArgsz(in, 8, 64));
      for (size_t off = 4; off < 64; off += 4) put32(off, in.U8() % 8);
      if ((in.U8() & 7) == 0) arg = 0;  // NULL argument
      break;
    }
  }
  if ((flags_byte & 0x3f) == 0x3f) arg = 0;  // NULL for any request
  const int rc = host_.Ioctl(fd, request, arg);
  CheckAnswer(request, rc);
}

void Program::Step(Input& in) {
  const uint8_t op = in.U8();
  switch (op % 8) {
    case 0:
    case 1:
      Open(in);
      break;
    case 2: {
      const int fd = PickFd(in);
      const int rc = host_.Close(fd);
      if (rc != 0 && rc != -EBADF) Fail("close answered neither 0 nor EBADF");
      for (auto it = fds_.begin(); it != fds_.end(); ++it) {
        if (*it == fd) {
          fds_.erase(it);
          break;
        }
      }
      break;
    }
    default:
      Ioctl(in);
      break;
  }
  CheckAccounting();
}

}  // namespace
}  // namespace viommu::vfio::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  viommu::vfio::fuzz::Input in(data, size);
  const uint8_t mode = in.U8();
  auto p = std::make_unique<viommu::vfio::fuzz::Program>(mode);
  for (int i = 0; i < viommu::vfio::fuzz::kMaxSteps && !in.empty(); ++i) {
    p->Step(in);
  }
  return 0;
}
