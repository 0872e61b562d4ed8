// HostPlatform <-> flattened device tree (libfdt). The binding is in
// docs/vfio-host-model.md; every libfdt error code is turned into a Status
// here and nowhere else (STYLE.md rule 12).
#include "viommu/vfio/host/host_platform_dtb.h"

#include <libfdt.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "viommu/util/status_macros.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::vfio {
namespace {

constexpr uint64_t kMaxBlobSize = 16u << 20;
constexpr uint32_t kDtbVersion = 17;  // what dtc and fdt_create write
constexpr unsigned kMinApertureBits = 12;
constexpr unsigned kMaxApertureBits = 64;

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

[[nodiscard]] absl::Status Invalid(std::string_view where,
                                   std::string_view what, int fdt_err = 0) {
  std::string msg =
      absl::StrCat("vfio-host-model dtb: ", Sv(where), ": ", Sv(what));
  if (fdt_err < 0)
    absl::StrAppend(&msg, " (libfdt: ", fdt_strerror(fdt_err), ")");
  return absl::InvalidArgumentError(msg);
}

[[nodiscard]] absl::Status BadProperty(std::string_view node,
                                       std::string_view prop,
                                       std::string_view what, int fdt_err = 0) {
  return Invalid(absl::StrCat(Sv(node), ": property '", Sv(prop), "'"), what,
                 fdt_err);
}

struct ResvTypeName {
  ResvType type;
  const char* name;
};
constexpr ResvTypeName kResvTypeNames[] = {
    {ResvType::kDirect, "direct"},
    {ResvType::kDirectRelaxable, "direct-relaxable"},
    {ResvType::kReserved, "reserved"},
    {ResvType::kMsi, "msi"},
    {ResvType::kSwMsi, "sw-msi"},
};

const char* ResvTypeToName(ResvType t) {
  for (const ResvTypeName& n : kResvTypeNames) {
    if (n.type == t) return n.name;
  }
  return "reserved";
}

// A validated blob: an 8-byte aligned private copy (libfdt's accessors
// assume natural alignment of the structure block).
class Reader {
 public:
  explicit Reader(const std::vector<uint64_t>& storage)
      : fdt_(storage.data()) {}

  std::string Path(int node) const {
    char buf[512];
    const int rc = fdt_get_path(fdt_, node, buf, sizeof(buf));
    return rc == 0 ? std::string(buf) : absl::StrCat("<node ", node, ">");
  }

  // The raw property, or nullopt when absent; other libfdt errors fail.
  [[nodiscard]] absl::StatusOr<std::optional<absl::string_view>> Raw(
      int node, const char* name, bool required) const {
    int len = 0;
    const void* p = fdt_getprop(fdt_, node, name, &len);
    if (p == nullptr) {
      if (len == -FDT_ERR_NOTFOUND && !required) return std::nullopt;
      return BadProperty(Path(node), name,
                         len == -FDT_ERR_NOTFOUND ? "missing" : "unreadable",
                         len);
    }
    return std::optional<absl::string_view>(absl::string_view(
        static_cast<const char*>(p), static_cast<size_t>(len)));
  }

  [[nodiscard]] absl::StatusOr<std::optional<uint32_t>> U32(
      int node, const char* name, bool required) const {
    VIOMMU_ASSIGN_OR_RETURN(auto raw, Raw(node, name, required));
    if (!raw) return std::nullopt;
    if (raw->size() != 4) {
      return BadProperty(Path(node), name,
                         absl::StrFormat("is %u bytes, expected one 32-bit "
                                         "cell (4 bytes)",
                                         raw->size()));
    }
    return fdt32_to_cpu(Load<fdt32_t>(raw->data()));
  }

  // One u64 as /bits/ 64 <v> or two cells <hi lo> (8 bytes), or one cell.
  [[nodiscard]] absl::StatusOr<std::optional<uint64_t>> U64(
      int node, const char* name, bool required) const {
    VIOMMU_ASSIGN_OR_RETURN(auto raw, Raw(node, name, required));
    if (!raw) return std::nullopt;
    if (raw->size() == 4)
      return uint64_t{fdt32_to_cpu(Load<fdt32_t>(raw->data()))};
    if (raw->size() == 8) return fdt64_to_cpu(Load<fdt64_t>(raw->data()));
    return BadProperty(Path(node), name,
                       absl::StrFormat("is %u bytes, expected a 64-bit value "
                                       "(4 or 8 bytes)",
                                       raw->size()));
  }

  // One NUL-terminated, non-empty string.
  [[nodiscard]] absl::StatusOr<std::string> String(int node,
                                                   const char* name) const {
    VIOMMU_ASSIGN_OR_RETURN(auto raw, Raw(node, name, /*required=*/true));
    if (raw->size() < 2 || raw->back() != '\0' ||
        raw->find('\0') != raw->size() - 1) {
      return BadProperty(Path(node), name, "expected one non-empty string");
    }
    return std::string(raw->data(), raw->size() - 1);
  }

  [[nodiscard]] absl::Status CheckCompatible(int node,
                                             const char* compatible) const {
    VIOMMU_ASSIGN_OR_RETURN(auto raw, Raw(node, "compatible", true));
    (void)raw;
    const int rc = fdt_node_check_compatible(fdt_, node, compatible);
    if (rc == 0) return absl::OkStatus();
    return BadProperty(Path(node), "compatible",
                       absl::StrCat("does not list \"", compatible, "\""),
                       rc < 0 ? rc : 0);
  }

  // Fails on a property not in `allowed` (a typo would otherwise be a
  // silently applied default).
  [[nodiscard]] absl::Status CheckProperties(
      int node, std::initializer_list<const char*> allowed) const {
    int prop;
    fdt_for_each_property_offset(prop, fdt_, node) {
      const char* name = nullptr;
      int len = 0;
      if (fdt_getprop_by_offset(fdt_, prop, &name, &len) == nullptr) {
        return Invalid(Path(node), "unreadable property", len);
      }
      const bool known = std::any_of(allowed.begin(), allowed.end(),
                                     [&](const char* a) {
                                       return std::strcmp(a, name) == 0;
                                     }) ||
                         std::strcmp(name, "phandle") == 0;
      if (!known) return BadProperty(Path(node), name, "unknown property");
    }
    if (prop != -FDT_ERR_NOTFOUND) {
      return Invalid(Path(node), "bad property list", prop);
    }
    return absl::OkStatus();
  }

  // The node's name up to '@'.
  absl::string_view BaseName(int node) const {
    int len = 0;
    const char* name = fdt_get_name(fdt_, node, &len);
    if (name == nullptr) return {};
    absl::string_view n(name, static_cast<size_t>(len));
    return n.substr(0, n.find('@'));
  }

  const void* fdt() const { return fdt_; }

 private:
  template <typename T>
  static T Load(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  const void* fdt_;
};

[[nodiscard]] absl::StatusOr<ResvRegion> ParseReserved(const Reader& r,
                                                       int node) {
  const std::string path = r.Path(node);
  VIOMMU_RETURN_IF_ERROR(r.CheckProperties(node, {"range", "type"}));
  VIOMMU_ASSIGN_OR_RETURN(auto raw, r.Raw(node, "range", true));
  if (raw->size() != 16) {
    return BadProperty(path, "range",
                       absl::StrFormat("is %u bytes, expected /bits/ 64 "
                                       "<first last> (16 bytes)",
                                       raw->size()));
  }
  fdt64_t be[2];
  std::memcpy(be, raw->data(), sizeof(be));
  ResvRegion region{fdt64_to_cpu(be[0]), fdt64_to_cpu(be[1]),
                    ResvType::kReserved};
  if (region.last < region.start) {
    return BadProperty(path, "range",
                       absl::StrFormat("last 0x%x is below first 0x%x",
                                       region.last, region.start));
  }
  VIOMMU_ASSIGN_OR_RETURN(std::string type, r.String(node, "type"));
  bool found = false;
  for (const ResvTypeName& n : kResvTypeNames) {
    if (type == n.name) {
      region.type = n.type;
      found = true;
    }
  }
  if (!found) {
    return BadProperty(path, "type",
                       absl::StrCat("unknown reserved-region type \"", type,
                                    "\" (direct, direct-relaxable, reserved, "
                                    "msi, sw-msi)"));
  }
  return region;
}

[[nodiscard]] absl::StatusOr<HostDeviceDesc> ParseDevice(const Reader& r,
                                                         int node) {
  const std::string path = r.Path(node);
  VIOMMU_RETURN_IF_ERROR(r.CheckProperties(
      node, {"compatible", "bdf", "iommu-group", "aperture-bits", "vendor-id",
             "device-id", "bar2-size"}));
  VIOMMU_RETURN_IF_ERROR(r.CheckCompatible(node, kHostDeviceCompatible));
  HostDeviceDesc d;
  VIOMMU_ASSIGN_OR_RETURN(std::string bdf, r.String(node, "bdf"));
  absl::StatusOr<HostPciAddress> address = HostPciAddress::Parse(bdf);
  if (!address.ok()) {
    return BadProperty(path, "bdf", std::string(address.status().message()));
  }
  d.address = *address;
  VIOMMU_ASSIGN_OR_RETURN(auto group, r.U32(node, "iommu-group", true));
  d.group = *group;
  VIOMMU_ASSIGN_OR_RETURN(auto bits, r.U32(node, "aperture-bits", true));
  if (*bits < kMinApertureBits || *bits > kMaxApertureBits) {
    return BadProperty(path, "aperture-bits",
                       absl::StrFormat("%u is outside %u..%u", *bits,
                                       kMinApertureBits, kMaxApertureBits));
  }
  d.aperture_bits = static_cast<uint8_t>(*bits);
  for (auto [name, out] : {std::pair{"vendor-id", &d.vendor_id},
                           std::pair{"device-id", &d.device_id}}) {
    VIOMMU_ASSIGN_OR_RETURN(auto id, r.U32(node, name, false));
    if (!id) continue;
    if (*id >= 0xffff) {
      return BadProperty(
          path, name, absl::StrFormat("0x%x is not a PCI id (< 0xffff)", *id));
    }
    *out = static_cast<uint16_t>(*id);
  }
  VIOMMU_ASSIGN_OR_RETURN(auto bar2, r.U64(node, "bar2-size", false));
  if (bar2) {
    if (*bar2 < 4096 || (*bar2 & (*bar2 - 1)) != 0 || *bar2 > (1ull << 40)) {
      return BadProperty(path, "bar2-size",
                         absl::StrFormat("0x%x is not a power of two in "
                                         "4 KiB..1 TiB",
                                         *bar2));
    }
    d.bar2_size = *bar2;
  }
  int child;
  fdt_for_each_subnode(child, r.fdt(), node) {
    if (r.BaseName(child) != "reserved") {
      return Invalid(r.Path(child),
                     "unknown node (a device has only reserved@... children)");
    }
    VIOMMU_ASSIGN_OR_RETURN(ResvRegion region, ParseReserved(r, child));
    d.reserved.push_back(region);
  }
  if (child != -FDT_ERR_NOTFOUND) {
    return Invalid(path, "bad subnode list", child);
  }
  std::sort(d.reserved.begin(), d.reserved.end(),
            [](const ResvRegion& a, const ResvRegion& b) {
              return a.start < b.start;
            });
  for (size_t i = 1; i < d.reserved.size(); ++i) {
    if (d.reserved[i].start <= d.reserved[i - 1].last) {
      return Invalid(path, absl::StrFormat(
                               "reserved regions [0x%x, 0x%x] and [0x%x, 0x%x] "
                               "overlap",
                               d.reserved[i - 1].start, d.reserved[i - 1].last,
                               d.reserved[i].start, d.reserved[i].last));
    }
  }
  return d;
}

[[nodiscard]] absl::Status ValidatePlatform(const HostPlatform& p) {
  if (p.pgsize_bitmap == 0 || (p.pgsize_bitmap & 0xfff) != 0) {
    return BadProperty(kHostModelNodePath, "pgsize-bitmap",
                       absl::StrFormat("0x%x: needs at least one page size and "
                                       "none below 4 KiB",
                                       p.pgsize_bitmap));
  }
  for (size_t i = 0; i < p.devices.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (p.devices[i].address == p.devices[j].address) {
        return BadProperty(
            absl::StrCat(kHostModelNodePath, "/device (#", i, ")"), "bdf",
            absl::StrCat("duplicate address ",
                         p.devices[i].address.ToString()));
      }
    }
  }
  return absl::OkStatus();
}

// Whether walking the structure block tag by tag always moves forward.
// Debian's libfdt 1.6.1 fdt_next_tag does not check a property's length for
// overflow: a length of -12 makes the next tag's offset the property's own,
// and fdt_check_full then loops forever on it (found by AFL++; the blob is
// tests/fuzz/corpus/host_platform_dtb/prop-len-minus12-loop). This is the
// walk fdt_check_full does, with the progress check it lacks; it ends
// because the offset only grows and fdt_next_tag stops at the block's end.
bool TagWalkAdvances(const void* fdt) {
  int offset = 0;
  for (;;) {
    int next = 0;
    const uint32_t tag = fdt_next_tag(fdt, offset, &next);
    if (tag == FDT_END || next < 0) return true;  // fdt_check_full judges
    if (next <= offset) return false;
    offset = next;
  }
}

[[nodiscard]] absl::Status FdtCheck(int rc, const char* what) {
  if (rc >= 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("vfio-host-model dtb: writing ", what,
                                          ": ", fdt_strerror(rc)));
}

}  // namespace

absl::StatusOr<HostPlatform> ParseHostPlatformDtb(
    absl::Span<const uint8_t> blob) {
  if (blob.size() < sizeof(fdt_header)) {
    return Invalid(
        "blob",
        absl::StrFormat("%u bytes is shorter than a header", blob.size()),
        -FDT_ERR_TRUNCATED);
  }
  if (blob.size() > kMaxBlobSize) {
    return Invalid("blob", absl::StrFormat("%u bytes is larger than %u",
                                           blob.size(), kMaxBlobSize));
  }
  std::vector<uint64_t> storage((blob.size() + 7) / 8);
  std::memcpy(storage.data(), blob.data(), blob.size());
  const void* fdt = storage.data();
  if (int rc = fdt_check_header(fdt); rc != 0) {
    return Invalid("blob", "bad header", rc);
  }
  // Only the version dtc writes (17, readable by 16 readers). libfdt accepts
  // headers down to version 2, but its walkers take an older blob's paths for
  // names, and Debian's libfdt 1.6.1 fdt_check_full reads address 0 on a
  // version-5 header (tests/fuzz/corpus/host_platform_dtb/version5-segv):
  // refuse before any walk.
  if (fdt_version(fdt) != kDtbVersion ||
      fdt_last_comp_version(fdt) > kDtbVersion) {
    return Invalid("blob",
                   absl::StrFormat("device tree version %u (last compatible "
                                   "%u); only version %u is read",
                                   fdt_version(fdt), fdt_last_comp_version(fdt),
                                   kDtbVersion),
                   -FDT_ERR_BADVERSION);
  }
  if (fdt_totalsize(fdt) > blob.size()) {
    return Invalid("blob",
                   absl::StrFormat("header says %u bytes, only %u present",
                                   fdt_totalsize(fdt), blob.size()),
                   -FDT_ERR_TRUNCATED);
  }
  if (!TagWalkAdvances(fdt)) {
    return Invalid("blob", "a property length makes the structure walk loop",
                   -FDT_ERR_BADSTRUCTURE);
  }
  if (int rc = fdt_check_full(fdt, fdt_totalsize(fdt)); rc != 0) {
    return Invalid("blob", "malformed structure", rc);
  }
  const Reader r(storage);
  const int top = fdt_path_offset(fdt, kHostModelNodePath);
  if (top < 0) return Invalid(kHostModelNodePath, "node missing", top);
  VIOMMU_RETURN_IF_ERROR(r.CheckProperties(
      top, {"compatible", "pgsize-bitmap", "dma-entry-limit"}));
  VIOMMU_RETURN_IF_ERROR(r.CheckCompatible(top, kHostModelCompatible));
  HostPlatform p;
  VIOMMU_ASSIGN_OR_RETURN(auto pgsize, r.U64(top, "pgsize-bitmap", false));
  if (pgsize) p.pgsize_bitmap = *pgsize;
  VIOMMU_ASSIGN_OR_RETURN(auto limit, r.U32(top, "dma-entry-limit", false));
  if (limit) p.dma_entry_limit = *limit;
  int child;
  fdt_for_each_subnode(child, fdt, top) {
    if (r.BaseName(child) != "device") {
      return Invalid(r.Path(child),
                     "unknown node (vfio-host-model has only device@... "
                     "children)");
    }
    VIOMMU_ASSIGN_OR_RETURN(HostDeviceDesc d, ParseDevice(r, child));
    for (const HostDeviceDesc& other : p.devices) {
      if (other.address == d.address) {
        return BadProperty(
            r.Path(child), "bdf",
            absl::StrCat("duplicate address ", d.address.ToString()));
      }
    }
    p.devices.push_back(std::move(d));
  }
  if (child != -FDT_ERR_NOTFOUND) {
    return Invalid(kHostModelNodePath, "bad subnode list", child);
  }
  VIOMMU_RETURN_IF_ERROR(ValidatePlatform(p));
  return p;
}

absl::StatusOr<std::vector<uint8_t>> HostPlatformToDtb(
    const HostPlatform& platform) {
  VIOMMU_RETURN_IF_ERROR(ValidatePlatform(platform));
  for (const HostDeviceDesc& d : platform.devices) {
    const std::string where = absl::StrCat("device ", d.address.ToString());
    if (d.aperture_bits < kMinApertureBits ||
        d.aperture_bits > kMaxApertureBits) {
      return BadProperty(where, "aperture-bits", "outside 12..64");
    }
    std::vector<ResvRegion> sorted = d.reserved;
    std::sort(sorted.begin(), sorted.end(),
              [](const ResvRegion& a, const ResvRegion& b) {
                return a.start < b.start;
              });
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i].last < sorted[i].start ||
          (i > 0 && sorted[i].start <= sorted[i - 1].last)) {
        return Invalid(where, "reserved regions overlap or are inverted");
      }
    }
  }
  // Grow the buffer until the tree fits.
  for (size_t size = 4096;; size *= 2) {
    std::vector<uint8_t> buf(size);
    void* fdt = buf.data();
    int rc = fdt_create(fdt, static_cast<int>(size));
    auto step = [&](int r) {
      if (rc >= 0 && r < 0) rc = r;
    };
    step(fdt_finish_reservemap(fdt));
    step(fdt_begin_node(fdt, ""));
    step(fdt_property_u32(fdt, "#address-cells", 1));
    step(fdt_property_u32(fdt, "#size-cells", 1));
    step(fdt_begin_node(fdt, kHostModelNodePath + 1));
    step(fdt_property_string(fdt, "compatible", kHostModelCompatible));
    step(fdt_property_u64(fdt, "pgsize-bitmap", platform.pgsize_bitmap));
    step(fdt_property_u32(fdt, "dma-entry-limit", platform.dma_entry_limit));
    for (size_t i = 0; i < platform.devices.size(); ++i) {
      const HostDeviceDesc& d = platform.devices[i];
      step(fdt_begin_node(fdt, absl::StrFormat("device@%u", i).c_str()));
      step(fdt_property_string(fdt, "compatible", kHostDeviceCompatible));
      step(fdt_property_string(fdt, "bdf", d.address.ToString().c_str()));
      step(fdt_property_u32(fdt, "iommu-group", d.group));
      step(fdt_property_u32(fdt, "aperture-bits", d.aperture_bits));
      step(fdt_property_u32(fdt, "vendor-id", d.vendor_id));
      step(fdt_property_u32(fdt, "device-id", d.device_id));
      step(fdt_property_u64(fdt, "bar2-size", d.bar2_size));
      for (const ResvRegion& region : d.reserved) {
        step(fdt_begin_node(
            fdt, absl::StrFormat("reserved@%x", region.start).c_str()));
        const fdt64_t range[2] = {cpu_to_fdt64(region.start),
                                  cpu_to_fdt64(region.last)};
        step(fdt_property(fdt, "range", range, sizeof(range)));
        step(fdt_property_string(fdt, "type", ResvTypeToName(region.type)));
        step(fdt_end_node(fdt));
      }
      step(fdt_end_node(fdt));
    }
    step(fdt_end_node(fdt));
    step(fdt_end_node(fdt));
    step(fdt_finish(fdt));
    if (rc == -FDT_ERR_NOSPACE && size < kMaxBlobSize) continue;
    VIOMMU_RETURN_IF_ERROR(FdtCheck(rc, "the host platform"));
    buf.resize(fdt_totalsize(fdt));
    return buf;
  }
}

absl::StatusOr<HostPlatform> ReadHostPlatformDtbFile(std::string_view path) {
  const std::string p(path);
  FILE* f = std::fopen(p.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    const std::string msg = absl::StrCat("vfio-host-model dtb: cannot open '",
                                         p, "': ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  std::vector<uint8_t> blob;
  uint8_t chunk[65536];
  bool too_big = false;
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), f)) {
    blob.insert(blob.end(), chunk, chunk + n);
    if (blob.size() > kMaxBlobSize) {
      too_big = true;
      break;
    }
  }
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error || too_big) {
    return absl::InvalidArgumentError(
        absl::StrCat("vfio-host-model dtb: cannot read '", p,
                     "': ", too_big ? "larger than 16 MiB" : "read error"));
  }
  absl::StatusOr<HostPlatform> platform = ParseHostPlatformDtb(blob);
  if (!platform.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, ": ", platform.status().message()));
  }
  return platform;
}

}  // namespace viommu::vfio
