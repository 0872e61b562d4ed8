// The type1 operation sequences of type1_differential: each opens fresh
// container/group fds, runs its operations through DiffEnv's logged
// wrappers and closes what it opened (a group has a single opener).
#include "tests/host/type1_sequences.h"

#include <sys/mman.h>

#include <cstring>
#include <map>

namespace viommu::vfio::difftest {

namespace {

using uapi::kDmaUnmapFlagAll;
using uapi::kDmaUnmapFlagVaddr;
using uapi::kVfioType1Iommu;
using uapi::kVfioType1v2Iommu;

constexpr uint64_t kMsiStart = 0xfee00000;
constexpr uint64_t kApertureEnd = uint64_t{1} << 39;  // exclusive

// ---- API, extensions, group state -----------------------------------------

void ApiAndExtensions(DiffEnv& env) {
  int c = OpenContainer(env);
  env.Log("GET_API_VERSION -> %s",
          Rc(env.host->Ioctl(c, uapi::kVfioGetApiVersion, 0)));
  for (unsigned long ext = 0; ext <= 12; ++ext) CheckExtension(env, c, ext);
  CloseFd(env, "container", c);
}

void ExtensionsAfterSetIommu(DiffEnv& env, unsigned long type) {
  int c, g;
  if (Setup(env, &c, &g, type)) {
    for (unsigned long ext = 0; ext <= 12; ++ext) CheckExtension(env, c, ext);
  }
  Teardown(env, c, g);
}

void GroupStatusLifecycle(DiffEnv& env) {
  int c = OpenContainer(env);
  int g = OpenGroup(env);
  GroupStatus(env, g);
  SetContainer(env, g, c);
  GroupStatus(env, g);
  SetIommu(env, c, kVfioType1v2Iommu);
  GroupStatus(env, g);
  UnsetContainer(env, g);
  GroupStatus(env, g);
  UnsetContainer(env, g);
  Teardown(env, c, g);
}

void GroupOpenRules(DiffEnv& env) {
  int g = OpenGroup(env);
  int g2 = OpenGroup(env);  // single opener
  CloseFd(env, "group2", g2);
  CloseFd(env, "group", g);
  int g3 = OpenGroup(env);  // free again
  CloseFd(env, "group", g3);
  OpenPath(env, "/dev/vfio/4242", "/dev/vfio/4242");
}

void SetIommuRules(DiffEnv& env) {
  int c = OpenContainer(env);
  SetIommu(env, c, kVfioType1v2Iommu);  // no group yet
  int g = OpenGroup(env);
  SetContainer(env, g, c);
  SetIommu(env, c, uapi::kVfioSpaprTceIommu);  // no such driver here
  SetIommu(env, c, 0);
  SetIommu(env, c, kVfioType1v2Iommu);
  SetIommu(env, c, kVfioType1v2Iommu);  // twice
  SetIommu(env, c, kVfioType1Iommu);
  Teardown(env, c, g);
}

void ContainerWithoutIommu(DiffEnv& env) {
  AnonBuffer buf(env, 0x10000);
  int c = OpenContainer(env);
  GetInfo(env, c, sizeof(uapi::vfio_iommu_type1_info));
  Map(env, c, 0x100000, 0x1000, buf.addr(), kRw, buf.addr());
  Unmap(env, c, 0x100000, 0x1000);
  int g = OpenGroup(env);
  SetContainer(env, g, c);
  GetInfo(env, c, sizeof(uapi::vfio_iommu_type1_info));
  Map(env, c, 0x100000, 0x1000, buf.addr(), kRw, buf.addr());
  Teardown(env, c, g);
}

void SetContainerRules(DiffEnv& env) {
  int c = OpenContainer(env);
  int c2 = OpenContainer(env);
  int g = OpenGroup(env);
  SetContainer(env, g, c);
  SetContainer(env, g, c);   // same container again
  SetContainer(env, g, c2);  // another container
  SetIommu(env, c, kVfioType1v2Iommu);
  SetContainer(env, g, c2);
  int bogus = -1;
  env.Log("GROUP_SET_CONTAINER fd=-1 -> %s",
          Rc(env.host->Ioctl(g, uapi::kVfioGroupSetContainer, AsArg(&bogus))));
  CloseFd(env, "container2", c2);
  Teardown(env, c, g);
}

void UnsetThenReset(DiffEnv& env) {
  AnonBuffer buf(env, 0x10000);
  int c, g;
  Setup(env, &c, &g);
  Map(env, c, 0x100000, 0x10000, buf.addr(), kRw, buf.addr());
  UnsetContainer(env, g);  // last group: the driver is released
  GetInfo(env, c, sizeof(uapi::vfio_iommu_type1_info));
  Map(env, c, 0x200000, 0x1000, buf.addr(), kRw, buf.addr());
  SetContainer(env, g, c);
  SetIommu(env, c, kVfioType1v2Iommu);
  Map(env, c, 0x100000, 0x10000, buf.addr(), kRw, buf.addr());  // gone?
  Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  int c2 = OpenContainer(env);
  UnsetContainer(env, g);
  SetContainer(env, g, c2);
  SetIommu(env, c2, kVfioType1Iommu);
  GetInfo(env, c2, sizeof(uapi::vfio_iommu_type1_info));
  CloseFd(env, "container2", c2);
  Teardown(env, c, g);
}

void CloseGroupReleases(DiffEnv& env) {
  AnonBuffer buf(env, 0x10000);
  int c, g;
  Setup(env, &c, &g);
  Map(env, c, 0x100000, 0x10000, buf.addr(), kRw, buf.addr());
  CloseFd(env, "group", g);
  Map(env, c, 0x200000, 0x1000, buf.addr(), kRw, buf.addr());
  Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  g = OpenGroup(env);
  GroupStatus(env, g);
  SetContainer(env, g, c);
  SetIommu(env, c, kVfioType1v2Iommu);
  Unmap(env, c, 0, 0, kDmaUnmapFlagAll);  // nothing survived
  CloseFd(env, "container", c);           // container first, then group
  GroupStatus(env, g);
  CloseFd(env, "group", g);
}

// ---- GET_INFO --------------------------------------------------------------

void GetInfoArgsz(DiffEnv& env) {
  int c, g;
  if (Setup(env, &c, &g)) {
    for (uint32_t argsz : {0u, 8u, 15u, 16u, 19u, 20u, 23u, 24u, 32u, 83u, 84u,
                           100u, 115u, 116u, 117u, 4096u}) {
      GetInfo(env, c, argsz);
    }
  }
  Teardown(env, c, g);
}

void GetInfoType1v1(DiffEnv& env) {
  int c, g;
  if (Setup(env, &c, &g, kVfioType1Iommu)) GetInfo(env, c, 4096);
  Teardown(env, c, g);
}

// ---- MAP / UNMAP -----------------------------------------------------------

void MapTableRows(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Map(env, c, 0x100000, 0x10000, b, kRw, b);
    Map(env, c, 0x108000, 0x1000, b, kRw, b);   // overlaps
    Map(env, c, 0x100000, 0x10000, b, kRw, b);  // identical
    Map(env, c, 0x300000, 0, b, kRw, b);
    Map(env, c, 0x200800, 0x1000, b, kRw, b);
    Map(env, c, 0x300000, 0x1000, b, 0, b);
    Map(env, c, 0x300000, 0x1000, b, uapi::kDmaMapFlagRead, b);
    Map(env, c, 0x301000, 0x1000, b, uapi::kDmaMapFlagWrite, b);
    Map(env, c, 0xfffffffffffff000, 0x2000, b, kRw, b);
    Map(env, c, kApertureEnd, 0x1000, b, kRw, b);
    Map(env, c, kApertureEnd - 0x1000, 0x1000, b, kRw, b);
    Map(env, c, kApertureEnd - 0x1000, 0x2000, b, kRw, b);
    Unmap(env, c, 0x104000, 0x1000);   // bisect
    Unmap(env, c, 0x500000, 0x10000);  // empty
    GetInfo(env, c, 116);
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
    GetInfo(env, c, 116);
  }
  Teardown(env, c, g);
}

void MapArgs(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Map(env, c, 0x100000, 0x1800, b, kRw, b);          // size not a page
    Map(env, c, 0x100000, 0x1000, b + 0x800, kRw, b);  // vaddr misaligned
    Map(env, c, 0x100000, 0x1000, b, kRw | 0x8, b);    // unknown flag
    Map(env, c, 0x100000, 0x1000, b, kRw | uapi::kDmaMapFlagVaddr, b);
    Map(env, c, 0x100000, 0x1000, b, kRw, b, 16);            // short argsz
    Map(env, c, 0x100000, 0x1000, b, kRw, b, 64);            // long argsz
    Map(env, c, 0x100000, 0x2000, 0xfffffffffffff000, kRw);  // vaddr wraps
    {
      // A hole: pages that were mapped and are no more.
      void* p = mmap(nullptr, 0x4000, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        env.Fail("mmap hole");
      } else {
        munmap(p, 0x4000);
        env.Log("(vaddr below is an unmapped hole)");
        auto hole = reinterpret_cast<uint64_t>(p);
        Map(env, c, 0x200000, 0x4000, hole, kRw, hole);
      }
    }
    {
      // Read-only memory mapped for device writes and for reads only.
      void* p =
          mmap(nullptr, 0x2000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        env.Fail("mmap read-only");
      } else {
        auto ro = reinterpret_cast<uint64_t>(p);
        Map(env, c, 0x300000, 0x2000, ro, kRw, ro);
        Map(env, c, 0x300000, 0x2000, ro, uapi::kDmaMapFlagRead, ro);
        Unmap(env, c, 0x300000, 0x2000);
        munmap(p, 0x2000);
      }
    }
    Map(env, c, 0x100000, 0x100000, b, kRw, b);  // the whole buffer: fine
    Map(env, c, 0x200000, 0x100000, b, kRw, b);  // same vaddr, other iova
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  }
  Teardown(env, c, g);
}

void ReservedAndAperture(DiffEnv& env) {
  AnonBuffer buf(env, 0x200000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Map(env, c, kMsiStart, 0x1000, b, kRw, b);               // inside
    Map(env, c, kMsiStart + 0x80000, 0x1000, b, kRw, b);     // inside
    Map(env, c, kMsiStart - 0x1000, 0x2000, b, kRw, b);      // straddles start
    Map(env, c, 0xfeeff000, 0x2000, b, kRw, b);              // straddles end
    Map(env, c, 0xfeeff000, 0x1000, b, kRw, b);              // last MSI page
    Map(env, c, kMsiStart - 0x100000, 0x200000, b, kRw, b);  // covers it
    Map(env, c, kMsiStart - 0x1000, 0x1000, b, kRw, b);      // just below
    Map(env, c, 0xfef00000, 0x1000, b, kRw, b);              // just above
    Map(env, c, kApertureEnd - 0x2000, 0x2000, b, kRw, b);   // ends at top
    Map(env, c, kApertureEnd + 0x1000, 0x1000, b, kRw, b);
    Map(env, c, 0xfffffffffffff000, 0x1000, b, kRw, b);  // top of 2^64
    Map(env, c, 0, 0x1000, b, kRw, b);                   // IOVA 0
    GetInfo(env, c, 116);
    Unmap(env, c, kMsiStart, 0x100000);  // the window
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  }
  Teardown(env, c, g);
}

void UnmapRules(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Unmap(env, c, 0x100000, 0x10000);  // empty container
    Map(env, c, 0x100000, 0x4000, b, kRw, b);
    Map(env, c, 0x104000, 0x4000, b + 0x4000, kRw, b);
    Map(env, c, 0x10c000, 0x4000, b + 0xc000, kRw, b);  // hole before it
    Unmap(env, c, 0x102000, 0x2000);                    // tail of the first
    Unmap(env, c, 0x100000, 0x2000);                    // head of the first
    Unmap(env, c, 0x100000, 0x6000);            // ends inside the second
    Unmap(env, c, 0x0, 0x0);                    // size 0
    Unmap(env, c, 0x100800, 0x1000);            // misaligned iova
    Unmap(env, c, 0x100000, 0x1800);            // misaligned size
    Unmap(env, c, 0xfffffffffffff000, 0x2000);  // wraps
    Unmap(env, c, 0x100000, 0x1000, 0x80);      // unknown flag
    Unmap(env, c, 0x100000, 0x4000, 0, 16);     // short argsz
    Unmap(env, c, 0x100000, 0x10000);           // covers all three and the hole
    Unmap(env, c, 0x100000, 0x10000);           // again: empty
    Map(env, c, 0x100000, 0x4000, b, kRw, b);
    Map(env, c, 0x104000, 0x4000, b + 0x4000, kRw, b);
    Unmap(env, c, 0x0, 0x104000);  // first exactly at its end
    Unmap(env, c, 0x104000, 0xfffffffffffff000 - 0x104000);  // the rest
  }
  Teardown(env, c, g);
}

void UnmapAllRules(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);  // empty
    Map(env, c, 0x100000, 0x10000, b, kRw, b);
    Map(env, c, 0x40000000, 0x20000, b, kRw, b);
    Map(env, c, kApertureEnd - 0x1000, 0x1000, b, kRw, b);
    Unmap(env, c, 0x100000, 0, kDmaUnmapFlagAll);  // iova != 0
    Unmap(env, c, 0, 0x1000, kDmaUnmapFlagAll);    // size != 0
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll | kDmaUnmapFlagVaddr);
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll | uapi::kDmaUnmapFlagGetDirtyBitmap);
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
    GetInfo(env, c, 116);
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  }
  Teardown(env, c, g);
}

void Type1v1Unmap(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g, kVfioType1Iommu)) {
    Map(env, c, 0x100000, 0x10000, b, kRw, b);
    Unmap(env, c, 0x104000, 0x1000);  // bisect: v1 semantics
    Unmap(env, c, 0x100000, 0x1000);  // head
    Map(env, c, 0x200000, 0x4000, b, kRw, b);
    Map(env, c, 0x204000, 0x4000, b, kRw, b);
    Unmap(env, c, 0x202000, 0x4000);  // straddles both
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
    Unmap(env, c, 0x100000, 0x10000);
  }
  Teardown(env, c, g);
}

void ManyMappings(DiffEnv& env) {
  AnonBuffer buf(env, 0x1000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    constexpr int kCount = 256;
    std::map<int, int> results;
    for (int i = 0; i < kCount; ++i) {
      uapi::vfio_iommu_type1_dma_map m{
          .argsz = sizeof(m),
          .flags = kRw,
          .vaddr = b,
          .iova = 0x10000000 + uint64_t(i) * 0x2000,
          .size = 0x1000};
      int rc = env.host->Ioctl(c, uapi::kVfioIommuMapDma, AsArg(&m));
      ++results[rc];
    }
    std::string hist;
    for (const auto& [rc, n] : results) {
      absl::StrAppendFormat(&hist, " %s:%d", Rc(rc), n);
    }
    env.Log("MAP x%d (one page each, same vaddr) ->%s", kCount, hist);
    GetInfo(env, c, 116);
    Unmap(env, c, 0x10000000, 0x1000 * 3);  // first two (one hole)
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
    GetInfo(env, c, 116);
  }
  Teardown(env, c, g);
}

// Maps one page at a time until the container's dma_entry_limit (65535
// on both sides) refuses one.
void DmaEntryLimit(DiffEnv& env) {
  AnonBuffer buf(env, 0x1000);
  int c, g;
  if (Setup(env, &c, &g)) {
    std::map<int, int> results;
    int n = 0;
    for (; n < 70000; ++n) {
      uapi::vfio_iommu_type1_dma_map m{
          .argsz = sizeof(m),
          .flags = kRw,
          .vaddr = buf.addr(),
          .iova = 0x100000000 + uint64_t(n) * 0x1000,
          .size = 0x1000};
      int rc = env.host->Ioctl(c, uapi::kVfioIommuMapDma, AsArg(&m));
      ++results[rc];
      if (rc != 0) break;
    }
    std::string hist;
    for (const auto& [rc, count] : results) {
      absl::StrAppendFormat(&hist, " %s:%d", Rc(rc), count);
    }
    env.Log("MAP until refused ->%s", hist);
    GetInfo(env, c, 116);
    Unmap(env, c, 0x100000000, 0x1000);
    Map(env, c, 0x100000000, 0x1000, buf.addr(), kRw, buf.addr());
    Map(env, c, 0x200000000, 0x1000, buf.addr(), kRw, buf.addr());
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  }
  Teardown(env, c, g);
}

// DIRTY_PAGES and UNMAP's GET_DIRTY_BITMAP: the bitmap bytes are printed.
int DirtyIoctl(DiffEnv& env, int c, uint32_t flags, uint64_t iova,
               uint64_t size, uint64_t pgsize, uint64_t bitmap_bytes,
               uint32_t argsz = 48) {
  struct {
    uint32_t argsz;
    uint32_t flags;
    uint64_t iova;
    uint64_t size;
    uapi::vfio_bitmap bitmap;
  } d{};
  static_assert(sizeof(d) == 48);
  uint8_t bits[64];
  std::memset(bits, 0xa5, sizeof(bits));
  d.argsz = argsz;
  d.flags = flags;
  d.iova = iova;
  d.size = size;
  d.bitmap = {.pgsize = pgsize,
              .size = bitmap_bytes,
              .data = reinterpret_cast<uint64_t>(bits)};
  int rc = env.host->Ioctl(c, uapi::kVfioIommuDirtyPages, AsArg(&d));
  if (flags == 4) {
    env.Log(
        "DIRTY_PAGES GET_BITMAP iova=0x%x size=0x%x pgsize=0x%x "
        "bytes=%u -> %s bitmap=%s",
        iova, size, pgsize, bitmap_bytes, Rc(rc), Hex(bits, 16));
  } else {
    env.Log("DIRTY_PAGES flags=0x%x argsz=%u -> %s", flags, argsz, Rc(rc));
  }
  return rc;
}

void DirtyPages(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Map(env, c, 0x100000, 0x10000, b, kRw, b);
    Map(env, c, 0x110000, 0x4000, b, uapi::kDmaMapFlagRead, b);
    DirtyIoctl(env, c, 4, 0x100000, 0x10000, 0x1000, 8);  // not started
    DirtyIoctl(env, c, 0, 0, 0, 0, 0, 8);
    DirtyIoctl(env, c, 1 | 2, 0, 0, 0, 0, 8);
    DirtyIoctl(env, c, 1, 0, 0, 0, 0, 4);  // short argsz
    DirtyIoctl(env, c, 1, 0, 0, 0, 0, 8);
    DirtyIoctl(env, c, 1, 0, 0, 0, 0, 8);  // again
    DirtyIoctl(env, c, 4, 0x100000, 0x14000, 0x1000, 8);
    DirtyIoctl(env, c, 4, 0x100000, 0x14000, 0x1000, 8);      // again
    DirtyIoctl(env, c, 4, 0x100000, 0x10000, 0x1000, 8, 24);  // short
    DirtyIoctl(env, c, 4, 0x100000, 0x10000, 0x2000, 8);      // wrong pgsize
    DirtyIoctl(env, c, 4, 0x100000, 0x10000, 0x1000, 0);      // no bytes
    DirtyIoctl(env, c, 4, 0x104000, 0x4000, 0x1000, 8);       // mid mapping
    DirtyIoctl(env, c, 4, 0x100000, 0x8000, 0x1000, 8);       // ends inside
    DirtyIoctl(env, c, 4, 0x200000, 0x10000, 0x1000, 8);      // nothing mapped
    DirtyIoctl(env, c, 4, 0x100000, 0x10000, 0x1000, 0x10000000 + 8);
    {
      struct {
        uapi::vfio_iommu_type1_dma_unmap u;
        uapi::vfio_bitmap bitmap;
      } arg{};
      uint8_t bits[16];
      std::memset(bits, 0xa5, sizeof(bits));
      arg.u = {
          .argsz = sizeof(arg), .flags = 1, .iova = 0x110000, .size = 0x4000};
      arg.bitmap = {.pgsize = 0x1000,
                    .size = 8,
                    .data = reinterpret_cast<uint64_t>(bits)};
      int rc = env.host->Ioctl(c, uapi::kVfioIommuUnmapDma, AsArg(&arg));
      env.Log(
          "UNMAP GET_DIRTY_BITMAP iova=0x110000 size=0x4000 -> %s "
          "size=0x%x bitmap=%s",
          Rc(rc), arg.u.size, Hex(bits, 16));
    }
    DirtyIoctl(env, c, 2, 0, 0, 0, 0, 8);
    DirtyIoctl(env, c, 4, 0x100000, 0x10000, 0x1000, 8);  // stopped
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  }
  Teardown(env, c, g);
  if (Setup(env, &c, &g, kVfioType1Iommu)) {
    DirtyIoctl(env, c, 1, 0, 0, 0, 0, 8);  // v1
  }
  Teardown(env, c, g);
}

// UNMAP with FLAG_VADDR invalidates the vaddr of whole mappings and MAP
// with FLAG_VADDR gives them a new one (6.1 has both).
void VaddrUpdate(DiffEnv& env) {
  AnonBuffer buf(env, 0x100000);
  const uint64_t b = buf.addr();
  int c, g;
  if (Setup(env, &c, &g)) {
    Map(env, c, 0x100000, 0x4000, b, kRw, b);
    Map(env, c, 0x104000, 0x4000, b + 0x4000, kRw, b);
    Map(env, c, 0x100000, 0x4000, b + 0x8000, uapi::kDmaMapFlagVaddr, b);
    Unmap(env, c, 0x102000, 0x2000, kDmaUnmapFlagVaddr);  // partial
    Unmap(env, c, 0x100000, 0x4000, kDmaUnmapFlagVaddr);
    Unmap(env, c, 0x100000, 0x4000, kDmaUnmapFlagVaddr);  // again
    GetInfo(env, c, 116);
    Map(env, c, 0x100000, 0x2000, b + 0x8000, uapi::kDmaMapFlagVaddr, b);
    Map(env, c, 0x200000, 0x4000, b + 0x8000, uapi::kDmaMapFlagVaddr, b);
    Map(env, c, 0x100000, 0x4000, b + 0x8000,
        uapi::kDmaMapFlagVaddr | uapi::kDmaMapFlagRead, b);
    Map(env, c, 0x100000, 0x4000, b + 0x8000, uapi::kDmaMapFlagVaddr, b);
    Map(env, c, 0x100000, 0x4000, b + 0x8000, uapi::kDmaMapFlagVaddr, b);
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll | kDmaUnmapFlagVaddr);
    Map(env, c, 0x108000, 0x1000, b, kRw, b);  // a new mapping meanwhile
    Map(env, c, 0x100000, 0x4000, b, uapi::kDmaMapFlagVaddr, b);
    Map(env, c, 0x104000, 0x4000, b + 0x4000, uapi::kDmaMapFlagVaddr, b);
    Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
  }
  Teardown(env, c, g);
}

// ---- device fd and P2P -----------------------------------------------------

int GetDeviceFd(DiffEnv& env, int group, const std::string& name,
                std::string_view label) {
  int fd =
      env.host->Ioctl(group, uapi::kVfioGroupGetDeviceFd, AsArg(name.c_str()));
  env.Log("GROUP_GET_DEVICE_FD %s -> %s", label, Rc(fd, true));
  return fd;
}

void DeviceFdRules(DiffEnv& env) {
  int c = OpenContainer(env);
  int g = OpenGroup(env);
  CloseFd(env, "device", GetDeviceFd(env, g, env.bdf, "bdf (no container)"));
  SetContainer(env, g, c);
  CloseFd(env, "device", GetDeviceFd(env, g, env.bdf, "bdf (no iommu)"));
  SetIommu(env, c, kVfioType1v2Iommu);
  GetDeviceFd(env, g, "0000:ff:1f.7", "unknown");
  GetDeviceFd(env, g, "", "empty name");
  int d = GetDeviceFd(env, g, env.bdf, "bdf");
  int d2 = GetDeviceFd(env, g, env.bdf, "bdf again");
  if (d >= 0) {
    uapi::vfio_device_info info{.argsz = sizeof(info)};
    int rc = env.host->Ioctl(d, uapi::kVfioDeviceGetInfo, AsArg(&info));
    env.Info("DEVICE_GET_INFO -> %s flags=0x%x regions=%u irqs=%u", Rc(rc),
             info.flags, info.num_regions, info.num_irqs);
    for (uint32_t i = 0; i < uapi::kPciNumRegions; ++i) {
      uapi::vfio_region_info r{.argsz = sizeof(r), .index = i};
      rc = env.host->Ioctl(d, uapi::kVfioDeviceGetRegionInfo, AsArg(&r));
      env.Info("REGION_INFO %u -> %s flags=0x%x size=0x%x offset=0x%x", i,
               Rc(rc), r.flags, r.size, r.offset);
    }
  }
  UnsetContainer(env, g);  // a device fd is open
  CloseFd(env, "device2", d2);
  CloseFd(env, "device", d);
  UnsetContainer(env, g);
  Teardown(env, c, g);
}

void P2pBarMap(DiffEnv& env) {
  AnonBuffer buf(env, 0x10000);
  int c, g;
  if (!Setup(env, &c, &g)) return Teardown(env, c, g);
  int d = GetDeviceFd(env, g, env.bdf, "bdf");
  uapi::vfio_region_info bar{};
  bool found = false;
  for (uint32_t i = 0; d >= 0 && i < uapi::kPciNumRegions && !found; ++i) {
    uapi::vfio_region_info r{.argsz = sizeof(r), .index = i};
    if (env.host->Ioctl(d, uapi::kVfioDeviceGetRegionInfo, AsArg(&r)) == 0 &&
        (r.flags & uapi::kRegionInfoFlagMmap) && r.size >= 0x2000) {
      bar = r;
      found = true;
    }
  }
  env.Log("first mmap-able region found -> %s", found ? "yes" : "no");
  if (found) {
    env.Info("mmap-able region %u size=0x%x flags=0x%x", bar.index, bar.size,
             bar.flags);
    absl::StatusOr<void*> p = env.host->Mmap(d, 0x2000, bar.offset);
    env.Log("mmap region 0x2000 -> %s", p.ok() ? "ok" : "error");
    if (p.ok()) {
      auto v = reinterpret_cast<uint64_t>(*p);
      Map(env, c, 0x40000000, 0x2000, v, kRw, v);
      Map(env, c, 0x40002000, 0x1000, v + 0x1000, uapi::kDmaMapFlagRead, v);
      Map(env, c, 0x100000, 0x1000, buf.addr(), kRw, buf.addr());
      GetInfo(env, c, 116);
      Unmap(env, c, 0x40000000, 0x3000);
      Unmap(env, c, 0, 0, kDmaUnmapFlagAll);
      env.host->Munmap(*p, 0x2000);
    } else {
      env.Info("mmap: %s", p.status().ToString());
    }
  }
  CloseFd(env, "device", d);
  Teardown(env, c, g);
}

}  // namespace

const std::vector<Sequence>& Type1Sequences() {
  static const auto* kSequences = new std::vector<Sequence>{
      {"api_and_extensions", ApiAndExtensions},
      {"extensions_after_set_iommu_v2",
       [](DiffEnv& env) { ExtensionsAfterSetIommu(env, kVfioType1v2Iommu); }},
      {"extensions_after_set_iommu_v1",
       [](DiffEnv& env) { ExtensionsAfterSetIommu(env, kVfioType1Iommu); }},
      {"group_status_lifecycle", GroupStatusLifecycle},
      {"group_open_rules", GroupOpenRules},
      {"set_iommu_rules", SetIommuRules},
      {"container_without_iommu", ContainerWithoutIommu},
      {"set_container_rules", SetContainerRules},
      {"unset_then_reset", UnsetThenReset},
      {"close_group_releases", CloseGroupReleases},
      {"get_info_argsz", GetInfoArgsz},
      {"get_info_type1v1", GetInfoType1v1},
      {"map_table_rows", MapTableRows},
      {"map_args", MapArgs},
      {"reserved_and_aperture", ReservedAndAperture},
      {"unmap_rules", UnmapRules},
      {"unmap_all_rules", UnmapAllRules},
      {"type1v1_unmap", Type1v1Unmap},
      {"many_mappings", ManyMappings},
      {"dma_entry_limit", DmaEntryLimit},
      {"dirty_pages", DirtyPages},
      {"vaddr_update", VaddrUpdate},
      {"device_fd_rules", DeviceFdRules},
      {"p2p_bar_map", P2pBarMap},
  };
  return *kSequences;
}

}  // namespace viommu::vfio::difftest
