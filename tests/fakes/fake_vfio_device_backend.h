// tests/fakes/fake_vfio_device_backend.h — a HostBackend that serves one
// vfio-pci device fd, with knobs and fault injection, for tests of the
// guest-facing vfio-pci device.
//
//   FakeVfioDeviceBackend fake;               // 1234:11e8, BAR0 4 KiB regs,
//   auto dev = VfioPciDevice::Create(         // BAR2 1 MiB mmap-able
//       &fake, FakeVfioDeviceBackend::kDeviceFd, "0000:01:00.0");
//   ... fake.Signal(uapi::kPciMsiIrqIndex, 0);  // the host raises MSI 0
//   EXPECT_EQ(fake.set_irqs.back().index, uapi::kPciMsiIrqIndex);
//
// The device: config region (index 7) of 256 bytes, 1234:11e8 rev 0x10
// class 0x00ff00, subsystem 5678:9abc, INTA#, capabilities MSI (0x40,
// 64-bit, 1 vector) -> PM (0x50) -> MSI-X (0x60); BAR0 a 32-bit 4 KiB
// register file (pread/pwrite); BAR2 a 64-bit prefetchable 1 MiB region
// with the MMAP flag over anonymous memory; INTx (1) and MSI (1) irqs.
// Config writes are applied to `config` as the bytes written. Every
// region access, SET_IRQS call, reset, mmap and munmap is recorded.
//
// Threading: single-threaded test use.
#ifndef VIOMMU_TESTS_FAKES_FAKE_VFIO_DEVICE_BACKEND_H_
#define VIOMMU_TESTS_FAKES_FAKE_VFIO_DEVICE_BACKEND_H_

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::testing {

class FakeVfioDeviceBackend final : public HostBackend {
 public:
  static constexpr int kDeviceFd = 42;
  static constexpr uint64_t kBar0Size = 0x1000;
  static constexpr uint64_t kBar2Size = 1 << 20;

  struct SetIrqsCall {
    uint32_t index = 0;
    uint32_t flags = 0;
    uint32_t start = 0;
    uint32_t count = 0;
    std::vector<int> fds;  // DATA_EVENTFD only
  };
  struct Access {
    bool write = false;
    uint32_t region = 0;
    uint64_t offset = 0;  // within the region
    uint64_t len = 0;
    uint64_t value = 0;  // little-endian, first 8 bytes
  };

  FakeVfioDeviceBackend() {
    void* p = mmap(nullptr, kBar2Size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bar2_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
    for (uint32_t i = 0; i < regions.size(); ++i) {
      regions[i] = {.argsz = sizeof(uapi::vfio_region_info),
                    .flags = 0,
                    .index = i,
                    .cap_offset = 0,
                    .size = 0,
                    .offset = uapi::PciIndexToOffset(i)};
    }
    const uint32_t rw = uapi::kRegionInfoFlagRead | uapi::kRegionInfoFlagWrite;
    regions[0].flags = rw;
    regions[0].size = kBar0Size;
    regions[2].flags = rw | uapi::kRegionInfoFlagMmap;
    regions[2].size = kBar2Size;
    regions[7].flags = rw;
    regions[7].size = 256;
    Put(0x00, 0x1234, 2);
    Put(0x02, 0x11e8, 2);
    Put(0x06, 0x0010, 2);      // capability list
    config[0x08] = 0x10;       // revision
    Put(0x09, 0x00ff00, 3);    // class
    Put(0x10, 0x00000000, 4);  // BAR0: 32-bit memory
    Put(0x18, 0x0000000c, 4);  // BAR2: 64-bit prefetchable memory
    Put(0x2c, 0x5678, 2);
    Put(0x2e, 0x9abc, 2);
    config[0x34] = 0x40;
    config[0x3d] = 1;      // INTA#
    Put(0x40, 0x5005, 2);  // MSI, next 0x50
    Put(0x42, 0x0080, 2);  // 64-bit, 1 vector
    Put(0x50, 0x6001, 2);  // PM, next 0x60
    Put(0x52, 0x0003, 2);  // PMC
    Put(0x54, 0x0008, 2);  // PMCSR
    Put(0x60, 0x0011, 2);  // MSI-X, end of list
    Put(0x62, 0x0007, 2);  // 8 vectors
  }
  ~FakeVfioDeviceBackend() override {
    if (bar2_ != nullptr) munmap(bar2_, kBar2Size);
  }

  // Little-endian store into the host config bytes.
  void Put(uint32_t off, uint32_t v, unsigned size) {
    for (unsigned i = 0; i < size; ++i) config[off + i] = uint8_t(v >> 8 * i);
  }
  uint32_t Get(uint32_t off, unsigned size) const {
    uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i) v |= uint32_t{config[off + i]} << 8 * i;
    return v;
  }
  uint8_t* bar2() { return bar2_; }
  // The host raising `vector` of irq `index`: writes 1 to its eventfd.
  // Returns false when no eventfd is registered there.
  bool Signal(uint32_t index, uint32_t vector = 0) {
    if (index >= triggers.size() || vector >= triggers[index].size()) {
      return false;
    }
    const uint64_t one = 1;
    return write(triggers[index][vector], &one, sizeof(one)) == sizeof(one);
  }
  // Config-region writes recorded at `offset`.
  std::vector<Access> ConfigWritesAt(uint64_t offset) const {
    std::vector<Access> out;
    for (const Access& a : accesses) {
      if (a.write && a.region == 7 && a.offset == offset) out.push_back(a);
    }
    return out;
  }

  // --- knobs ----------------------------------------------------------------
  std::array<uint8_t, 256> config{};
  std::array<uint8_t, kBar0Size> bar0{};
  std::array<uapi::vfio_region_info, uapi::kPciNumRegions> regions{};
  uint32_t device_flags = uapi::kDeviceFlagsPci | uapi::kDeviceFlagsReset;
  uint32_t intx_count = 1;
  uint32_t msi_count = 1;
  int fail_region_info_index = -1;  // GET_REGION_INFO of it fails
  int fail_region_info_errno = EIO;
  bool region_info_wrong_index = false;  // answers index + 1
  int fail_set_irqs_errno = 0;           // every SET_IRQS fails
  int fail_pread_region = -1;            // pread of that region: -EIO
  bool fail_mmap = false;
  // Non-empty: region 2 carries a sparse-mmap capability with these
  // {offset, size} areas (the kernel's two-call argsz protocol).
  std::vector<std::pair<uint64_t, uint64_t>> bar2_sparse_areas;
  bool sparse_cap_loops = false;  // its `next` points at itself

  // --- records --------------------------------------------------------------
  std::vector<SetIrqsCall> set_irqs;
  std::vector<Access> accesses;  // pread/pwrite (not config reads)
  // Current trigger eventfds per irq index.
  std::array<std::vector<int>, uapi::kPciNumIrqs> triggers{};
  int resets = 0;
  int mmaps = 0;
  int munmaps = 0;
  int closes = 0;

  // --- HostBackend ----------------------------------------------------------
  std::string_view name() const override { return "fake"; }
  int Open(std::string_view) override { return -ENOENT; }
  int Close(int fd) override {
    if (fd != kDeviceFd) return -EBADF;
    ++closes;
    return 0;
  }

  int Ioctl(int fd, unsigned long request, uintptr_t arg) override {
    if (fd != kDeviceFd) return -EBADF;
    switch (request) {
      case uapi::kVfioDeviceGetInfo: {
        auto* di = reinterpret_cast<uapi::vfio_device_info*>(arg);
        if (di->argsz < 16) return -EINVAL;
        di->flags = device_flags;
        di->num_regions = uapi::kPciNumRegions;
        di->num_irqs = uapi::kPciNumIrqs;
        return 0;
      }
      case uapi::kVfioDeviceGetRegionInfo: {
        auto* ri = reinterpret_cast<uapi::vfio_region_info*>(arg);
        if (ri->argsz < sizeof(*ri) || ri->index >= regions.size()) {
          return -EINVAL;
        }
        if (int(ri->index) == fail_region_info_index) {
          return -fail_region_info_errno;
        }
        const uint32_t argsz = ri->argsz;
        const uint32_t index = ri->index;
        *ri = regions[index];
        ri->argsz = argsz;
        if (index == 2 && !bar2_sparse_areas.empty()) AddSparseCap(ri);
        if (region_info_wrong_index) ++ri->index;
        return 0;
      }
      case uapi::kVfioDeviceGetIrqInfo: {
        auto* ii = reinterpret_cast<uapi::vfio_irq_info*>(arg);
        if (ii->argsz < sizeof(*ii) || ii->index >= uapi::kPciNumIrqs) {
          return -EINVAL;
        }
        ii->flags = uapi::kIrqInfoEventfd;
        ii->count = 0;
        if (ii->index == uapi::kPciIntxIrqIndex) {
          ii->flags |= uapi::kIrqInfoMaskable | uapi::kIrqInfoAutomasked;
          ii->count = intx_count;
        } else if (ii->index == uapi::kPciMsiIrqIndex) {
          ii->flags |= uapi::kIrqInfoNoresize;
          ii->count = msi_count;
        }
        return 0;
      }
      case uapi::kVfioDeviceSetIrqs:
        return SetIrqs(arg);
      case uapi::kVfioDeviceReset:
        ++resets;
        return 0;
      default:
        return -ENOTTY;
    }
  }

  int64_t Pread(int fd, void* buf, uint64_t len, uint64_t offset) override {
    uint8_t* p = nullptr;
    const int64_t rc = Locate(fd, len, offset, &p);
    if (rc < 0) return rc;
    const uint32_t region = uint32_t(offset >> 40);
    if (int(region) == fail_pread_region) return -EIO;
    std::memcpy(buf, p, len);
    if (region != uapi::kPciConfigRegionIndex) Record(false, offset, len, p);
    return int64_t(len);
  }

  int64_t Pwrite(int fd, const void* buf, uint64_t len,
                 uint64_t offset) override {
    uint8_t* p = nullptr;
    const int64_t rc = Locate(fd, len, offset, &p);
    if (rc < 0) return rc;
    std::memcpy(p, buf, len);
    Record(true, offset, len, p);
    return int64_t(len);
  }

  [[nodiscard]] absl::StatusOr<void*> Mmap(int fd, uint64_t len,
                                           uint64_t offset) override {
    const uapi::vfio_region_info& r2 = regions[2];
    if (fd != kDeviceFd || fail_mmap || offset < r2.offset ||
        offset - r2.offset + len > r2.size || r2.size > kBar2Size ||
        !(r2.flags & uapi::kRegionInfoFlagMmap)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "mmap(fd=%d, len=0x%x, offset=0x%x): Invalid argument (errno 22)", fd,
          len, offset));
    }
    ++mmaps;
    return static_cast<void*>(bar2_ + (offset - r2.offset));
  }
  void Munmap(void*, uint64_t) override { ++munmaps; }

  [[nodiscard]] absl::StatusOr<uint32_t> IommuGroupOf(
      const HostPciAddress&) override {
    return absl::NotFoundError("fake: no sysfs");
  }
  [[nodiscard]] absl::StatusOr<std::vector<ResvRegion>> GroupReservedRegions(
      uint32_t) override {
    return std::vector<ResvRegion>{};
  }
  [[nodiscard]] absl::StatusOr<std::string> DeviceCdevPath(
      const HostPciAddress&) override {
    return absl::NotFoundError("fake: no cdev");
  }

 private:
  int SetIrqs(uintptr_t arg) {
    uapi::vfio_irq_set hdr;
    std::memcpy(&hdr, reinterpret_cast<const void*>(arg), sizeof(hdr));
    if (hdr.argsz < sizeof(hdr) || hdr.index >= uapi::kPciNumIrqs) {
      return -EINVAL;
    }
    SetIrqsCall call{.index = hdr.index,
                     .flags = hdr.flags,
                     .start = hdr.start,
                     .count = hdr.count,
                     .fds = {}};
    if (hdr.flags & uapi::kIrqSetDataEventfd) {
      if (hdr.argsz < sizeof(hdr) + hdr.count * sizeof(int32_t)) {
        return -EINVAL;
      }
      for (uint32_t i = 0; i < hdr.count; ++i) {
        int32_t efd;
        std::memcpy(&efd,
                    reinterpret_cast<const uint8_t*>(arg) + sizeof(hdr) +
                        i * sizeof(efd),
                    sizeof(efd));
        call.fds.push_back(efd);
      }
    }
    set_irqs.push_back(call);
    if (fail_set_irqs_errno != 0) return -fail_set_irqs_errno;
    if (hdr.flags & uapi::kIrqSetActionTrigger) {
      triggers[hdr.index] = call.fds;  // DATA_NONE with count 0: disable
    }
    return 0;
  }

  // What vfio-pci does for a region with capabilities: too small an argsz
  // gets the needed size and cap_offset 0; enough gets the chain.
  void AddSparseCap(uapi::vfio_region_info* ri) {
    const uint32_t n = static_cast<uint32_t>(bar2_sparse_areas.size());
    const uint32_t needed = sizeof(*ri) + 16 + 16 * n;
    ri->flags |= uapi::kRegionInfoFlagCaps;
    if (ri->argsz < needed) {
      ri->argsz = needed;
      ri->cap_offset = 0;
      return;
    }
    ri->argsz = needed;
    ri->cap_offset = sizeof(*ri);
    uint8_t* cap = reinterpret_cast<uint8_t*>(ri) + sizeof(*ri);
    const uapi::vfio_info_cap_header hdr{
        .id = 1, .version = 1, .next = sparse_cap_loops ? ri->cap_offset : 0};
    std::memcpy(cap, &hdr, sizeof(hdr));
    std::memcpy(cap + 8, &n, 4);
    std::memset(cap + 12, 0, 4);
    for (uint32_t i = 0; i < n; ++i) {
      std::memcpy(cap + 16 + 16 * i, &bar2_sparse_areas[i].first, 8);
      std::memcpy(cap + 24 + 16 * i, &bar2_sparse_areas[i].second, 8);
    }
  }

  int64_t Locate(int fd, uint64_t len, uint64_t offset, uint8_t** p) {
    if (fd != kDeviceFd) return -EBADF;
    const uint64_t region = offset >> 40;
    const uint64_t off = offset & ((uint64_t{1} << 40) - 1);
    if (region >= regions.size() || off + len > regions[region].size) {
      return -EINVAL;
    }
    switch (region) {
      case 0:
        *p = bar0.data() + off;
        return 0;
      case 2:
        *p = bar2_ + off;
        return 0;
      case 7:
        *p = config.data() + off;
        return 0;
      default:
        return -EINVAL;
    }
  }

  void Record(bool is_write, uint64_t offset, uint64_t len, const uint8_t* p) {
    uint64_t v = 0;
    std::memcpy(&v, p, len < 8 ? len : 8);
    accesses.push_back(Access{.write = is_write,
                              .region = uint32_t(offset >> 40),
                              .offset = offset & ((uint64_t{1} << 40) - 1),
                              .len = len,
                              .value = v});
  }

  uint8_t* bar2_ = nullptr;
};

}  // namespace viommu::vfio::testing

#endif  // VIOMMU_TESTS_FAKES_FAKE_VFIO_DEVICE_BACKEND_H_
