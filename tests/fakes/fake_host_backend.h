// tests/fakes/fake_host_backend.h — FakeHostBackend, a fault-injecting
// HostBackend for the VFIO container layer's tests (LevelDB ErrorEnv
// style). It answers the type1 and iommufd ioctls with just enough kernel
// behaviour (argsz rules, EINVAL/EEXIST/ENOENT/EMSGSIZE, capability chain
// bytes) and records every ioctl.
//
//   FakeHostBackend host;
//   host.AddDevice("0000:01:00.0", /*group=*/1);
//   host.iova_ranges = {{0, 0xfedfffff}, {0xfef00000, (1ull << 48) - 1}};
//   host.refuse_join_groups.insert(2);   // EINVAL on SET_CONTAINER (join)
//   host.fail_map_nth = 3;               // the 3rd map ioctl fails
//   ... attach through VfioManager ...
//   EXPECT_EQ(host.HostMappingCount(), 0u);
//
// Not a model of the kernel: no pinning, no real translation. Thread-safety:
// none (tests call it from one thread).
#ifndef VIOMMU_TESTS_FAKES_FAKE_HOST_BACKEND_H_
#define VIOMMU_TESTS_FAKES_FAKE_HOST_BACKEND_H_

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "viommu/util/range.h"
#include "viommu/vfio/host/host_backend.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::vfio::testing {

class FakeHostBackend final : public HostBackend {
 public:
  struct Call {
    int fd;
    unsigned long request;
  };
  struct HostMapping {
    uint64_t size = 0;
    uint64_t vaddr = 0;
    bool readonly = false;
  };

  // ---- configuration ------------------------------------------------------
  std::vector<Range> iova_ranges = {Range::Full()};
  uint64_t pgsizes = (1ull << 12) | (1ull << 21) | (1ull << 30);
  uint32_t dma_limit = 65535;
  bool has_type1v2 = true;
  bool has_unmap_all = true;
  std::set<uint32_t> nonviable_groups;
  // SET_CONTAINER of these groups into a container that already has a
  // group answers EINVAL (incompatible IOMMU domain).
  std::set<uint32_t> refuse_join_groups;
  // ATTACH_IOMMUFD_PT of these devices to an IOAS that already has a
  // device answers EINVAL.
  std::set<std::string> refuse_join_devices;
  // The Nth (1-based) map ioctl fails with -fail_map_errno.
  int fail_map_nth = 0;
  int fail_map_errno = EIO;
  // Called for every map before the checks; non-zero is returned (-errno).
  std::function<int(uint64_t iova, uint64_t size, uint64_t vaddr)> map_hook;
  // Requests that always fail with the given -errno.
  std::map<unsigned long, int> fail_ioctl;
  // A raw VFIO_IOMMU_GET_INFO reply (copied up to the caller's argsz).
  std::optional<std::vector<uint8_t>> get_info_reply;

  void AddDevice(const std::string& bdf, uint32_t group) {
    device_groups_[bdf] = group;
  }

  // ---- observations -------------------------------------------------------
  std::vector<Call> calls;
  int map_calls = 0;
  int unmap_calls = 0;

  int CallCount(unsigned long request) const {
    int n = 0;
    for (const Call& c : calls) n += c.request == request;
    return n;
  }
  size_t HostMappingCount() const {
    size_t n = 0;
    for (const auto& [fd, c] : containers_) n += c.maps.size();
    for (const auto& [id, i] : ioas_) n += i.maps.size();
    return n;
  }
  // Every host mapping of every container / IOAS, by iova.
  std::map<uint64_t, HostMapping> AllMappings() const {
    std::map<uint64_t, HostMapping> out;
    for (const auto& [fd, c] : containers_)
      out.insert(c.maps.begin(), c.maps.end());
    for (const auto& [id, i] : ioas_) out.insert(i.maps.begin(), i.maps.end());
    return out;
  }
  size_t open_fds() const { return fds_.size(); }
  size_t container_count() const { return containers_.size(); }
  size_t ioas_count() const { return ioas_.size(); }

  // ---- HostBackend --------------------------------------------------------
  std::string_view name() const override { return "fake"; }

  int Open(std::string_view path) override {
    const std::string p(path);
    Fd f;
    if (p == "/dev/vfio/vfio") {
      f.kind = Kind::kContainer;
    } else if (p == "/dev/iommu") {
      f.kind = Kind::kIommufd;
    } else if (p.rfind("/dev/vfio/devices/vfio", 0) == 0) {
      f.kind = Kind::kCdev;
      f.bdf = cdev_bdf_[p];
      if (f.bdf.empty()) return -ENOENT;
    } else if (p.rfind("/dev/vfio/", 0) == 0) {
      f.kind = Kind::kGroup;
      f.group = static_cast<uint32_t>(std::stoul(p.substr(10)));
      bool known = false;
      for (const auto& [bdf, g] : device_groups_) known |= g == f.group;
      if (!known) return -ENOENT;
      for (const auto& [fd, o] : fds_) {
        if (o.kind == Kind::kGroup && o.group == f.group) return -EBUSY;
      }
    } else {
      return -ENOENT;
    }
    const int fd = next_fd_++;
    fds_[fd] = f;
    if (f.kind == Kind::kContainer) containers_[fd];
    return fd;
  }

  int Close(int fd) override {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return -EBADF;
    Fd& f = it->second;
    if (f.kind == Kind::kGroup && f.container >= 0) UnsetContainer(f);
    if (f.kind == Kind::kCdev && f.ioas != 0) ioas_[f.ioas].devices.erase(fd);
    if (f.kind == Kind::kContainer) containers_.erase(fd);
    fds_.erase(it);
    return 0;
  }

  int Ioctl(int fd, unsigned long request, uintptr_t arg) override {
    calls.push_back({fd, request});
    auto fi = fail_ioctl.find(request);
    if (fi != fail_ioctl.end()) return fi->second;
    auto it = fds_.find(fd);
    if (it == fds_.end()) return -EBADF;
    Fd& f = it->second;
    switch (f.kind) {
      case Kind::kContainer:
        return ContainerIoctl(fd, request, arg);
      case Kind::kGroup:
        return GroupIoctl(f, request, arg);
      case Kind::kIommufd:
        return IommufdIoctl(request, arg);
      case Kind::kCdev:
        return CdevIoctl(fd, f, request, arg);
      case Kind::kDevice:
        return -ENOTTY;
    }
    return -ENOTTY;
  }

  int64_t Pread(int, void*, uint64_t, uint64_t) override { return -ENOSYS; }
  int64_t Pwrite(int, const void*, uint64_t, uint64_t) override {
    return -ENOSYS;
  }
  [[nodiscard]] absl::StatusOr<void*> Mmap(int, uint64_t, uint64_t) override {
    return absl::UnimplementedError("fake: no mmap");
  }
  void Munmap(void*, uint64_t) override {}

  [[nodiscard]] absl::StatusOr<uint32_t> IommuGroupOf(
      const HostPciAddress& d) override {
    auto it = device_groups_.find(d.ToString());
    if (it == device_groups_.end()) {
      return absl::NotFoundError("fake: no device " + d.ToString());
    }
    return it->second;
  }
  [[nodiscard]] absl::StatusOr<std::vector<ResvRegion>> GroupReservedRegions(
      uint32_t) override {
    return std::vector<ResvRegion>{};
  }
  [[nodiscard]] absl::StatusOr<std::string> DeviceCdevPath(
      const HostPciAddress& d) override {
    const std::string bdf = d.ToString();
    if (!device_groups_.count(bdf)) return absl::NotFoundError("fake: " + bdf);
    for (const auto& [path, b] : cdev_bdf_) {
      if (b == bdf) return path;
    }
    std::string path =
        "/dev/vfio/devices/vfio" + std::to_string(cdev_bdf_.size());
    cdev_bdf_[path] = bdf;
    return path;
  }

 private:
  enum class Kind { kContainer, kGroup, kIommufd, kCdev, kDevice };
  struct Fd {
    Kind kind = Kind::kContainer;
    uint32_t group = 0;
    int container = -1;  // group: the container fd it is set in
    std::string bdf;     // cdev
    uint32_t devid = 0;  // cdev: bound when != 0
    uint32_t ioas = 0;   // cdev: attached IOAS
  };
  struct Container {
    std::set<int> group_fds;
    bool iommu_set = false;
    std::map<uint64_t, HostMapping> maps;
  };
  struct Ioas {
    std::set<int> devices;  // cdev fds
    std::map<uint64_t, HostMapping> maps;
  };

  template <typename T>
  static T* Ptr(uintptr_t arg) {
    return reinterpret_cast<T*>(arg);
  }

  bool InRanges(uint64_t iova, uint64_t size) const {
    const uint64_t last = iova + (size - 1);
    for (const Range& r : iova_ranges) {
      if (r.Contains(Range{iova, last})) return true;
    }
    return false;
  }

  // Checks shared by type1 MAP_DMA and IOAS_MAP; 0 or -errno.
  int CheckMap(std::map<uint64_t, HostMapping>& maps, uint64_t iova,
               uint64_t size, uint64_t vaddr) {
    ++map_calls;
    if (fail_map_nth != 0 && map_calls == fail_map_nth) return -fail_map_errno;
    if (map_hook) {
      if (int rc = map_hook(iova, size, vaddr); rc != 0) return rc;
    }
    if (size == 0 || (iova | size) & 0xfff || iova + (size - 1) < iova) {
      return -EINVAL;
    }
    if (!InRanges(iova, size)) return -EINVAL;
    const uint64_t last = iova + (size - 1);
    for (const auto& [start, m] : maps) {
      if (start <= last && iova <= start + (m.size - 1)) return -EEXIST;
    }
    return 0;
  }

  // Removes mappings inside [iova, iova+size); -EINVAL if one is cut.
  int Unmap(std::map<uint64_t, HostMapping>& maps, uint64_t iova, uint64_t size,
            uint64_t* unmapped) {
    ++unmap_calls;
    if (size == 0) return -EINVAL;
    const uint64_t last = iova + (size - 1);
    std::vector<uint64_t> kill;
    for (const auto& [start, m] : maps) {
      const uint64_t mlast = start + (m.size - 1);
      if (start > last || mlast < iova) continue;
      if (start < iova || mlast > last) return -EINVAL;  // no splitting
      kill.push_back(start);
    }
    *unmapped = 0;
    for (uint64_t k : kill) {
      *unmapped += maps[k].size;
      maps.erase(k);
    }
    return 0;
  }

  void UnsetContainer(Fd& g) {
    Container& c = containers_[g.container];
    for (auto it = c.group_fds.begin(); it != c.group_fds.end();) {
      if (fds_[*it].group == g.group) {
        it = c.group_fds.erase(it);
      } else {
        ++it;
      }
    }
    if (c.group_fds.empty()) {  // the kernel drops the IOMMU and mappings
      c.iommu_set = false;
      c.maps.clear();
    }
    g.container = -1;
  }

  std::vector<uint8_t> BuildInfo() const {
    std::vector<uint8_t> caps;
    auto put = [&caps](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      caps.insert(caps.end(), b, b + n);
    };
    const uint32_t iova_cap_at = sizeof(uapi::vfio_iommu_type1_info);
    const uint32_t iova_cap_size =
        16 + 16 * static_cast<uint32_t>(iova_ranges.size());
    uapi::vfio_info_cap_header h1{uapi::kIommuTypeCapIovaRange, 1,
                                  iova_cap_at + iova_cap_size};
    put(&h1, sizeof(h1));
    const uint32_t nr = static_cast<uint32_t>(iova_ranges.size());
    const uint32_t reserved = 0;
    put(&nr, 4);
    put(&reserved, 4);
    for (const Range& r : iova_ranges) {
      uapi::vfio_iova_range v{r.first, r.last};
      put(&v, sizeof(v));
    }
    uapi::vfio_info_cap_header h2{uapi::kIommuTypeCapDmaAvail, 1, 0};
    put(&h2, sizeof(h2));
    size_t used = 0;
    for (const auto& [fd, c] : containers_) used += c.maps.size();
    const uint32_t avail =
        used >= dma_limit ? 0 : dma_limit - static_cast<uint32_t>(used);
    put(&avail, 4);
    uint32_t pad = 0;
    put(&pad, 4);
    uapi::vfio_iommu_type1_info info{};
    info.argsz = static_cast<uint32_t>(sizeof(info) + caps.size());
    info.flags = uapi::kIommuInfoPgsizes | uapi::kIommuInfoCaps;
    info.iova_pgsizes = pgsizes;
    info.cap_offset = iova_cap_at;
    std::vector<uint8_t> out(sizeof(info) + caps.size());
    std::memcpy(out.data(), &info, sizeof(info));
    if (!caps.empty()) {
      std::memcpy(out.data() + sizeof(info), caps.data(), caps.size());
    }
    return out;
  }

  int ContainerIoctl(int fd, unsigned long request, uintptr_t arg) {
    Container& c = containers_[fd];
    switch (request) {
      case uapi::kVfioGetApiVersion:
        return uapi::kVfioApiVersion;
      case uapi::kVfioCheckExtension:
        if (arg == uapi::kVfioType1v2Iommu) return has_type1v2 ? 1 : 0;
        if (arg == uapi::kVfioType1Iommu) return 1;
        if (arg == uapi::kVfioUnmapAll) return has_unmap_all ? 1 : 0;
        return 0;
      case uapi::kVfioSetIommu:
        if (c.group_fds.empty() || c.iommu_set) return -EINVAL;
        c.iommu_set = true;
        return 0;
      case uapi::kVfioIommuGetInfo: {
        if (!c.iommu_set) return -EINVAL;
        auto* user = Ptr<uint8_t>(arg);
        uint32_t argsz = 0;
        std::memcpy(&argsz, user, 4);
        if (argsz < uapi::kIommuType1InfoMinsz) return -EINVAL;
        std::vector<uint8_t> reply =
            get_info_reply ? *get_info_reply : BuildInfo();
        uint32_t need = 0;
        std::memcpy(&need, reply.data(), 4);
        if (!get_info_reply && argsz < need) {
          // Too small for the caps: report the size, no chain.
          uapi::vfio_iommu_type1_info hdr{};
          std::memcpy(&hdr, reply.data(), sizeof(hdr));
          hdr.cap_offset = 0;
          std::memcpy(user, &hdr, std::min<size_t>(argsz, sizeof(hdr)));
          return 0;
        }
        std::memcpy(user, reply.data(), std::min<size_t>(argsz, reply.size()));
        return 0;
      }
      case uapi::kVfioIommuMapDma: {
        auto* m = Ptr<uapi::vfio_iommu_type1_dma_map>(arg);
        if (!c.iommu_set) return -EINVAL;
        if (int rc = CheckMap(c.maps, m->iova, m->size, m->vaddr); rc != 0) {
          return rc;
        }
        size_t used = 0;
        for (const auto& [f, o] : containers_) used += o.maps.size();
        if (used >= dma_limit) return -ENOSPC;
        c.maps[m->iova] = {m->size, m->vaddr,
                           !(m->flags & uapi::kDmaMapFlagWrite)};
        return 0;
      }
      case uapi::kVfioIommuUnmapDma: {
        auto* u = Ptr<uapi::vfio_iommu_type1_dma_unmap>(arg);
        if (!c.iommu_set) return -EINVAL;
        if (u->flags & uapi::kDmaUnmapFlagAll) {
          ++unmap_calls;
          if (!has_unmap_all || u->iova != 0 || u->size != 0) return -EINVAL;
          uint64_t all = 0;
          for (const auto& [start, m] : c.maps) all += m.size;
          c.maps.clear();
          u->size = all;
          return 0;
        }
        uint64_t done = 0;
        if (int rc = Unmap(c.maps, u->iova, u->size, &done); rc != 0) return rc;
        u->size = done;
        return 0;
      }
    }
    return -ENOTTY;
  }

  int GroupIoctl(Fd& g, unsigned long request, uintptr_t arg) {
    switch (request) {
      case uapi::kVfioGroupGetStatus: {
        auto* st = Ptr<uapi::vfio_group_status>(arg);
        st->flags =
            (nonviable_groups.count(g.group) ? 0 : uapi::kGroupFlagsViable) |
            (g.container >= 0 ? uapi::kGroupFlagsContainerSet : 0);
        return 0;
      }
      case uapi::kVfioGroupSetContainer: {
        const int cfd = *Ptr<int>(arg);
        if (g.container >= 0) return -EBUSY;
        auto it = fds_.find(cfd);
        if (it == fds_.end() || it->second.kind != Kind::kContainer) {
          return -EBADF;
        }
        Container& c = containers_[cfd];
        if (!c.group_fds.empty() && refuse_join_groups.count(g.group)) {
          return -EINVAL;
        }
        for (auto& [fd, o] : fds_) {
          if (&o == &g) c.group_fds.insert(fd);
        }
        g.container = cfd;
        return 0;
      }
      case uapi::kVfioGroupUnsetContainer:
        if (g.container < 0) return -EINVAL;
        UnsetContainer(g);
        return 0;
      case uapi::kVfioGroupGetDeviceFd: {
        if (g.container < 0) return -EINVAL;
        const std::string bdf(Ptr<const char>(arg));
        auto it = device_groups_.find(bdf);
        if (it == device_groups_.end() || it->second != g.group) return -ENODEV;
        Fd d;
        d.kind = Kind::kDevice;
        d.bdf = bdf;
        const int fd = next_fd_++;
        fds_[fd] = d;
        return fd;
      }
    }
    return -ENOTTY;
  }

  int IommufdIoctl(unsigned long request, uintptr_t arg) {
    switch (request) {
      case uapi::kIommuIoasAlloc: {
        auto* a = Ptr<uapi::iommu_ioas_alloc>(arg);
        a->out_ioas_id = next_ioas_++;
        ioas_[a->out_ioas_id];
        return 0;
      }
      case uapi::kIommuDestroy: {
        auto* d = Ptr<uapi::iommu_destroy>(arg);
        auto it = ioas_.find(d->id);
        if (it == ioas_.end()) return -ENOENT;
        if (!it->second.devices.empty()) return -EBUSY;
        ioas_.erase(it);
        return 0;
      }
      case uapi::kIommuIoasIovaRanges: {
        auto* q = Ptr<uapi::iommu_ioas_iova_ranges>(arg);
        if (!ioas_.count(q->ioas_id)) return -ENOENT;
        const uint32_t n = static_cast<uint32_t>(iova_ranges.size());
        const uint32_t room = q->num_iovas;
        q->num_iovas = n;
        q->out_iova_alignment = pgsizes & (~pgsizes + 1);
        if (room < n) return -EMSGSIZE;
        auto* out = Ptr<uapi::iommu_iova_range>(q->allowed_iovas);
        for (uint32_t i = 0; i < n; ++i) {
          out[i] = {iova_ranges[i].first, iova_ranges[i].last};
        }
        return 0;
      }
      case uapi::kIommuIoasMap: {
        auto* m = Ptr<uapi::iommu_ioas_map>(arg);
        auto it = ioas_.find(m->ioas_id);
        if (it == ioas_.end()) return -ENOENT;
        if (!(m->flags & uapi::kIoasMapFixedIova)) return -EINVAL;
        if (int rc = CheckMap(it->second.maps, m->iova, m->length, m->user_va);
            rc != 0) {
          return rc;
        }
        it->second.maps[m->iova] = {m->length, m->user_va,
                                    !(m->flags & uapi::kIoasMapWriteable)};
        return 0;
      }
      case uapi::kIommuIoasUnmap: {
        auto* u = Ptr<uapi::iommu_ioas_unmap>(arg);
        auto it = ioas_.find(u->ioas_id);
        if (it == ioas_.end()) return -ENOENT;
        uint64_t done = 0;
        if (int rc = Unmap(it->second.maps, u->iova, u->length, &done);
            rc != 0) {
          return rc;
        }
        if (done == 0) return -ENOENT;
        u->length = done;
        return 0;
      }
    }
    return -ENOTTY;
  }

  int CdevIoctl(int fd, Fd& d, unsigned long request, uintptr_t arg) {
    switch (request) {
      case uapi::kVfioDeviceBindIommufd: {
        auto* b = Ptr<uapi::vfio_device_bind_iommufd>(arg);
        if (d.devid != 0) return -EINVAL;
        auto it = fds_.find(b->iommufd);
        if (it == fds_.end() || it->second.kind != Kind::kIommufd)
          return -EBADF;
        d.devid = next_devid_++;
        b->out_devid = d.devid;
        return 0;
      }
      case uapi::kVfioDeviceAttachIommufdPt: {
        auto* a = Ptr<uapi::vfio_device_attach_iommufd_pt>(arg);
        if (d.devid == 0) return -EINVAL;
        auto it = ioas_.find(a->pt_id);
        if (it == ioas_.end()) return -ENOENT;
        if (!it->second.devices.empty() && refuse_join_devices.count(d.bdf)) {
          return -EINVAL;
        }
        it->second.devices.insert(fd);
        d.ioas = a->pt_id;
        return 0;
      }
      case uapi::kVfioDeviceDetachIommufdPt:
        if (d.ioas == 0) return -EINVAL;
        ioas_[d.ioas].devices.erase(fd);
        d.ioas = 0;
        return 0;
    }
    return -ENOTTY;
  }

  std::map<std::string, uint32_t> device_groups_;
  std::map<std::string, std::string> cdev_bdf_;  // cdev path -> bdf
  std::map<int, Fd> fds_;
  std::map<int, Container> containers_;  // by container fd
  std::map<uint32_t, Ioas> ioas_;
  int next_fd_ = 10;
  uint32_t next_ioas_ = 1;
  uint32_t next_devid_ = 1;
};

}  // namespace viommu::vfio::testing

#endif  // VIOMMU_TESTS_FAKES_FAKE_HOST_BACKEND_H_
