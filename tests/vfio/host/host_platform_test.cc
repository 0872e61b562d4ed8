// HostPlatform: the default table (ARCHITECTURE.md §4 contract), the text
// parsers, and the device-tree binding (docs/vfio-host-model.md) in both
// directions, including every parser error and a crash-freedom loop over
// damaged blobs.
#include "viommu/vfio/host/host_platform.h"

#include <libfdt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/vfio/host/host_platform_dtb.h"

namespace viommu::vfio {
namespace {

using ::testing::HasSubstr;

constexpr ResvRegion kMsi{0xfee00000, 0xfeefffff, ResvType::kMsi};

// ---- a tiny tree builder for hand-made (and broken) blobs -----------------

struct Node {
  std::string name;
  std::vector<std::pair<std::string, std::string>> props;  // raw bytes
  std::vector<Node> children;

  Node& Set(const std::string& key, std::string bytes) {
    for (auto& [k, v] : props) {
      if (k == key) {
        v = std::move(bytes);
        return *this;
      }
    }
    props.emplace_back(key, std::move(bytes));
    return *this;
  }
  void Erase(const std::string& key) {
    std::erase_if(props, [&](const auto& p) { return p.first == key; });
  }
};

std::string Str(const std::string& s) { return s + std::string(1, '\0'); }
std::string Be32(uint32_t v) {
  const fdt32_t b = cpu_to_fdt32(v);
  return std::string(reinterpret_cast<const char*>(&b), 4);
}
std::string Be64(uint64_t v) {
  const fdt64_t b = cpu_to_fdt64(v);
  return std::string(reinterpret_cast<const char*>(&b), 8);
}

void Emit(void* fdt, const Node& n) {
  ASSERT_EQ(fdt_begin_node(fdt, n.name.c_str()), 0);
  for (const auto& [k, v] : n.props) {
    ASSERT_EQ(
        fdt_property(fdt, k.c_str(), v.data(), static_cast<int>(v.size())), 0);
  }
  for (const Node& c : n.children) Emit(fdt, c);
  ASSERT_EQ(fdt_end_node(fdt), 0);
}

std::vector<uint8_t> Blob(const Node& root) {
  std::vector<uint8_t> buf(1 << 16);
  void* fdt = buf.data();
  EXPECT_EQ(fdt_create(fdt, static_cast<int>(buf.size())), 0);
  EXPECT_EQ(fdt_finish_reservemap(fdt), 0);
  Emit(fdt, root);
  EXPECT_EQ(fdt_finish(fdt), 0);
  buf.resize(fdt_totalsize(fdt));
  return buf;
}

Node Reserved(uint64_t first, uint64_t last, const std::string& type) {
  char name[32];
  std::snprintf(name, sizeof(name), "reserved@%llx",
                static_cast<unsigned long long>(first));
  Node n{name, {}, {}};
  n.Set("range", Be64(first) + Be64(last)).Set("type", Str(type));
  return n;
}

Node Device(const std::string& bdf, uint32_t group, uint32_t bits) {
  Node n{"device@" + std::to_string(group), {}, {}};
  n.Set("compatible", Str(kHostDeviceCompatible))
      .Set("bdf", Str(bdf))
      .Set("iommu-group", Be32(group))
      .Set("aperture-bits", Be32(bits));
  n.children.push_back(Reserved(0xfee00000, 0xfeefffff, "msi"));
  return n;
}

// A valid tree with two devices; tests damage one piece of it.
Node ValidTree() {
  Node model{"vfio-host-model", {}, {}};
  model.Set("compatible", Str(kHostModelCompatible));
  model.children.push_back(Device("0000:01:00.0", 1, 48));
  model.children.push_back(Device("0000:02:00.0", 2, 39));
  return Node{"", {}, {model}};
}
Node& Model(Node& root) { return root.children[0]; }
Node& Dev(Node& root, size_t i) { return Model(root).children[i]; }

// Expects kInvalidArgument whose message contains every `parts`.
void ExpectInvalid(const Node& tree, std::vector<std::string> parts) {
  absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(Blob(tree));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(part));
  }
}

void ExpectSamePlatform(const HostPlatform& a, const HostPlatform& b) {
  EXPECT_EQ(a.pgsize_bitmap, b.pgsize_bitmap);
  EXPECT_EQ(a.dma_entry_limit, b.dma_entry_limit);
  ASSERT_EQ(a.devices.size(), b.devices.size());
  for (size_t i = 0; i < a.devices.size(); ++i) {
    const HostDeviceDesc& x = a.devices[i];
    const HostDeviceDesc& y = b.devices[i];
    EXPECT_EQ(x.address, y.address) << i;
    EXPECT_EQ(x.group, y.group) << i;
    EXPECT_EQ(x.aperture_bits, y.aperture_bits) << i;
    EXPECT_EQ(x.reserved, y.reserved) << i;
    EXPECT_EQ(x.vendor_id, y.vendor_id) << i;
    EXPECT_EQ(x.device_id, y.device_id) << i;
    EXPECT_EQ(x.bar2_size, y.bar2_size) << i;
  }
}

// ---- the default platform ---------------------------------------------------

TEST(HostPlatformTest, DefaultTableEqualsTheContract) {
  const HostPlatform& p = DefaultHostPlatform();
  EXPECT_EQ(p.pgsize_bitmap, (1ull << 12) | (1ull << 21) | (1ull << 30));
  EXPECT_EQ(p.dma_entry_limit, 65535u);
  ASSERT_EQ(p.devices.size(), 3u);
  struct Row {
    const char* bdf;
    uint32_t group;
    uint8_t bits;
    std::vector<ResvRegion> reserved;
  };
  const Row rows[] = {
      {"0000:01:00.0", 1, 48, {kMsi}},
      {"0000:02:00.0",
       2,
       48,
       {{0x0f000000, 0x0f0fffff, ResvType::kDirect}, kMsi}},
      {"0000:03:00.0", 3, 39, {kMsi}},
  };
  for (size_t i = 0; i < 3; ++i) {
    const HostDeviceDesc& d = p.devices[i];
    EXPECT_EQ(d.address.ToString(), rows[i].bdf);
    EXPECT_EQ(d.group, rows[i].group);
    EXPECT_EQ(d.aperture_bits, rows[i].bits);
    EXPECT_EQ(d.reserved, rows[i].reserved);
    EXPECT_EQ(d.vendor_id, 0x1234);
    EXPECT_EQ(d.device_id, 0x11e8);
    EXPECT_EQ(d.bar2_size, 1u << 20);
    EXPECT_EQ(p.FindDevice(d.address), &d);
    EXPECT_EQ(p.GroupDevices(d.group), std::vector<const HostDeviceDesc*>{&d});
  }
  EXPECT_EQ(p.devices[2].aperture_last(), (1ull << 39) - 1);
  EXPECT_EQ(p.FindDevice({0, 4, 0, 0}), nullptr);
  EXPECT_TRUE(p.GroupDevices(9).empty());
}

// ---- text parsers
// -------------------------------------------------------------

TEST(HostPciAddressTest, ParsesBothFormsAndPrintsCanonically) {
  absl::StatusOr<HostPciAddress> a = HostPciAddress::Parse("0001:a0:1f.7");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, (HostPciAddress{1, 0xa0, 0x1f, 7}));
  EXPECT_EQ(a->ToString(), "0001:a0:1f.7");
  absl::StatusOr<HostPciAddress> b = HostPciAddress::Parse("02:03.1");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->ToString(), "0000:02:03.1");
}

TEST(HostPciAddressTest, RejectsMalformedText) {
  for (const char* bad :
       {"", "0000:01:00", "0000:01:20.0", "0000:01:00.8", "00000:01:00.0",
        "0000:100:00.0", "0000:01:00.0.0", "x000:01:00.0", "0000:01:00.", ":",
        "1:2:3:4.0", "0000:01:00.-1"}) {
    absl::StatusOr<HostPciAddress> a = HostPciAddress::Parse(bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(a.status().message()),
                HasSubstr(std::string("'") + bad + "'"));
  }
}

TEST(ResvRegionLineTest, ParsesSysfsLines) {
  absl::StatusOr<ResvRegion> r =
      ParseResvRegionLine("0x00000000fee00000 0x00000000feefffff msi");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, kMsi);
  const std::pair<const char*, ResvType> types[] = {
      {"direct", ResvType::kDirect},
      {"direct-relaxable", ResvType::kDirectRelaxable},
      {"reserved", ResvType::kReserved}};
  for (const auto& [name, type] : types) {
    r = ParseResvRegionLine(std::string("0x1000 0x1fff ") + name);
    ASSERT_TRUE(r.ok()) << name;
    EXPECT_EQ(*r, (ResvRegion{0x1000, 0x1fff, type}));
  }
}

TEST(ResvRegionLineTest, FormatIsTheKernelsAndRoundTrips) {
  EXPECT_EQ(FormatResvRegionLine(kMsi),
            "0x00000000fee00000 0x00000000feefffff msi");
  for (ResvType t : {ResvType::kDirect, ResvType::kDirectRelaxable,
                     ResvType::kReserved, ResvType::kMsi}) {
    const ResvRegion r{0x1000, 0xffffffffffffffff, t};
    EXPECT_EQ(*ParseResvRegionLine(FormatResvRegionLine(r)), r);
  }
  EXPECT_EQ(FormatResvRegionLine({0, 0xfff, ResvType::kSwMsi}),
            "0x0000000000000000 0x0000000000000fff msi");
}

TEST(ResvRegionLineTest, RejectsMalformedLines) {
  for (const char* bad :
       {"", "0x1000 0x1fff", "0x1000 0x1fff msi extra", "1000 0x1fff msi",
        "0x2000 0x1fff msi", "0x1000 0x1fff bogus", "0x 0x1fff msi",
        "0x10000000000000000 0x1fff msi", "0xg000 0x1fff msi"}) {
    absl::StatusOr<ResvRegion> r = ParseResvRegionLine(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// ---- device tree: round trips
// ---------------------------------------------------

TEST(HostPlatformDtbTest, DefaultPlatformRoundTrips) {
  absl::StatusOr<std::vector<uint8_t>> blob =
      HostPlatformToDtb(DefaultHostPlatform());
  ASSERT_TRUE(blob.ok()) << blob.status();
  absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(*blob);
  ASSERT_TRUE(p.ok()) << p.status();
  ExpectSamePlatform(*p, DefaultHostPlatform());
}

TEST(HostPlatformDtbTest, EveryFieldRoundTrips) {
  HostPlatform in;
  in.pgsize_bitmap = (1ull << 12) | (1ull << 16);
  in.dma_entry_limit = 7;
  in.devices.push_back(
      {.address = {0x12, 0x34, 0x1f, 7},
       .group = 0xffffffff,
       .aperture_bits = 64,
       .reserved = {{0x1000, 0x1fff, ResvType::kReserved},
                    {0x2000, 0x2fff, ResvType::kSwMsi},
                    {0x3000, 0x3fff, ResvType::kDirectRelaxable},
                    {0xffff0000, ~0ull, ResvType::kDirect}},
       .vendor_id = 0x8086,
       .device_id = 0,
       .bar2_size = 1ull << 32});
  in.devices.push_back(
      {.address = {0, 0, 0, 0}, .group = 0, .aperture_bits = 12});
  absl::StatusOr<std::vector<uint8_t>> blob = HostPlatformToDtb(in);
  ASSERT_TRUE(blob.ok()) << blob.status();
  absl::StatusOr<HostPlatform> out = ParseHostPlatformDtb(*blob);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectSamePlatform(*out, in);
}

TEST(HostPlatformDtbTest, OptionalPropertiesTakeDefaultsAndRegionsAreSorted) {
  Node t = ValidTree();
  Dev(t, 1).children.insert(Dev(t, 1).children.begin(),
                            Reserved(0xfee00000 + 0x100000, ~0ull, "reserved"));
  Dev(t, 1).children.push_back(Reserved(0x1000, 0x1000, "direct"));
  Dev(t, 1).Set("bar2-size", Be32(0x4000));  // one cell is accepted too
  absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(Blob(t));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->pgsize_bitmap, HostPlatform{}.pgsize_bitmap);
  EXPECT_EQ(p->dma_entry_limit, 65535u);
  ASSERT_EQ(p->devices.size(), 2u);
  EXPECT_EQ(p->devices[0].vendor_id, 0x1234);
  EXPECT_EQ(p->devices[0].device_id, 0x11e8);
  EXPECT_EQ(p->devices[0].bar2_size, 1u << 20);
  EXPECT_EQ(p->devices[1].bar2_size, 0x4000u);
  EXPECT_EQ(
      p->devices[1].reserved,
      (std::vector<ResvRegion>{{0x1000, 0x1000, ResvType::kDirect},
                               kMsi,
                               {0xfef00000, ~0ull, ResvType::kReserved}}));
}

TEST(HostPlatformDtbTest, ExampleDtsCompiledByDtcParses) {
  const char* path = std::getenv("VIOMMU_EXAMPLE_DTB");
  if (path == nullptr) GTEST_SKIP() << "dtc not installed at configure time";
  absl::StatusOr<HostPlatform> p = ReadHostPlatformDtbFile(path);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->dma_entry_limit, 4096u);
  ASSERT_EQ(p->devices.size(), 4u);
  EXPECT_EQ(p->devices[1].address.ToString(), "0000:05:00.0");
  EXPECT_EQ(p->devices[1].aperture_bits, 39);
  EXPECT_EQ(p->devices[1].device_id, 0x11e9);
  EXPECT_EQ(p->devices[1].bar2_size, 0x200000u);
  EXPECT_EQ(p->devices[1].reserved.front(),
            (ResvRegion{0x0f000000, 0x0f0fffff, ResvType::kDirect}));
  EXPECT_EQ(p->GroupDevices(8).size(), 2u);
}

TEST(HostPlatformDtbTest, ReadFileReportsMissingFileAndReadsAWrittenOne) {
  absl::StatusOr<HostPlatform> missing =
      ReadHostPlatformDtbFile("/nonexistent/host.dtb");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("/nonexistent/host.dtb"));

  absl::StatusOr<std::vector<uint8_t>> blob =
      HostPlatformToDtb(DefaultHostPlatform());
  ASSERT_TRUE(blob.ok());
  char path[] = "/tmp/viommu_host_platform_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE* f = fdopen(fd, "wb");
  ASSERT_EQ(std::fwrite(blob->data(), 1, blob->size(), f), blob->size());
  std::fclose(f);
  absl::StatusOr<HostPlatform> p = ReadHostPlatformDtbFile(path);
  std::remove(path);
  ASSERT_TRUE(p.ok()) << p.status();
  ExpectSamePlatform(*p, DefaultHostPlatform());
}

// ---- device tree: every error
// ---------------------------------------------------

TEST(HostPlatformDtbErrorTest, BadMagic) {
  std::vector<uint8_t> blob = Blob(ValidTree());
  blob[0] ^= 0xff;
  absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(blob);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("FDT_ERR_BADMAGIC"));
}

void SetBe32(std::vector<uint8_t>& blob, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    blob[offset + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  }
}

// A header that says version 5 made Debian's libfdt 1.6.1 fdt_check_full read
// address 0 (found by the host_platform_dtb fuzzer; the blob is in its
// corpus). Every version other than 17 is refused before any walk.
TEST(HostPlatformDtbErrorTest, OldAndNewVersionsAreRefusedBeforeAnyWalk) {
  // {version, last_comp_version}: libfdt's own header check passes each of
  // these (last_comp <= version <= 17 or a newer version readable by 16), so
  // it is the parser's version rule that refuses them; {5, 0} is the header
  // of the fuzzer's blob.
  const std::pair<uint32_t, uint32_t> kHeaders[] = {
      {2, 2}, {5, 0}, {16, 16}, {18, 16}};
  for (const auto& [version, last_comp] : kHeaders) {
    std::vector<uint8_t> blob = Blob(ValidTree());
    SetBe32(blob, 20, version);    // fdt_header.version
    SetBe32(blob, 24, last_comp);  // fdt_header.last_comp_version
    absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(blob);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << version;
    EXPECT_THAT(std::string(p.status().message()),
                HasSubstr(absl::StrCat("device tree version ", version)));
    EXPECT_THAT(std::string(p.status().message()),
                HasSubstr("FDT_ERR_BADVERSION"));
  }
}

// A property whose length is -12 made Debian's libfdt 1.6.1 fdt_check_full
// loop forever: fdt_next_tag gives the property's own offset as the next
// one (found by AFL++; the blob is corpus/host_platform_dtb/
// prop-len-minus12-loop). The parser refuses it; a hang fails this test.
TEST(HostPlatformDtbErrorTest, PropertyLengthThatStallsTheTagWalkIsRefused) {
  std::vector<uint8_t> blob = Blob(ValidTree());
  int offset = 0;
  int next = 0;
  while (fdt_next_tag(blob.data(), offset, &next) != FDT_PROP) {
    ASSERT_GT(next, offset) << "no property in the valid tree";
    offset = next;
  }
  const size_t len_at = fdt_off_dt_struct(blob.data()) + offset + 4;
  for (size_t i = 0; i < 4; ++i) {
    blob[len_at + i] =
        static_cast<uint8_t>(uint32_t{0xfffffff4} >> (24 - 8 * i));
  }
  ASSERT_EQ(fdt_next_tag(blob.data(), offset, &next), uint32_t{FDT_PROP});
  absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(blob);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("FDT_ERR_BADSTRUCTURE"));
}

TEST(HostPlatformDtbErrorTest, TruncatedBlob) {
  std::vector<uint8_t> blob = Blob(ValidTree());
  for (size_t len : {size_t{0}, size_t{8}, blob.size() / 2, blob.size() - 1}) {
    absl::StatusOr<HostPlatform> p =
        ParseHostPlatformDtb(absl::MakeConstSpan(blob.data(), len));
    ASSERT_FALSE(p.ok()) << len;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("FDT_ERR_"));
  }
}

TEST(HostPlatformDtbErrorTest, MissingModelNode) {
  Node t = ValidTree();
  Model(t).name = "other";
  ExpectInvalid(t, {"/vfio-host-model", "node missing", "FDT_ERR_NOTFOUND"});
}

TEST(HostPlatformDtbErrorTest, WrongOrMissingCompatible) {
  Node t = ValidTree();
  Model(t).Set("compatible", Str("acme,other"));
  ExpectInvalid(t, {"/vfio-host-model", "'compatible'", kHostModelCompatible});
  t = ValidTree();
  Dev(t, 1).Erase("compatible");
  ExpectInvalid(t, {"/vfio-host-model/device@2", "'compatible'", "missing",
                    "FDT_ERR_NOTFOUND"});
}

TEST(HostPlatformDtbErrorTest, MissingRequiredProperties) {
  for (const char* prop : {"bdf", "iommu-group", "aperture-bits"}) {
    Node t = ValidTree();
    Dev(t, 0).Erase(prop);
    ExpectInvalid(t,
                  {"/vfio-host-model/device@1", std::string("'") + prop + "'",
                   "missing", "FDT_ERR_NOTFOUND"});
  }
  for (const char* prop : {"range", "type"}) {
    Node t = ValidTree();
    Dev(t, 1).children[0].Erase(prop);
    ExpectInvalid(t, {"/vfio-host-model/device@2/reserved@fee00000",
                      std::string("'") + prop + "'", "FDT_ERR_NOTFOUND"});
  }
}

TEST(HostPlatformDtbErrorTest, UnknownReservedType) {
  Node t = ValidTree();
  Dev(t, 0).children[0].Set("type", Str("bogus"));
  ExpectInvalid(t, {"reserved@fee00000", "'type'", "\"bogus\""});
}

TEST(HostPlatformDtbErrorTest, OverlappingReservedRegions) {
  Node t = ValidTree();
  Dev(t, 0).children.push_back(Reserved(0xfe000000, 0xfee00000, "reserved"));
  ExpectInvalid(t, {"/vfio-host-model/device@1", "overlap", "0xfee00000"});
}

TEST(HostPlatformDtbErrorTest, InvertedOrShortRange) {
  Node t = ValidTree();
  Dev(t, 0).children[0].Set("range", Be64(0x2000) + Be64(0x1fff));
  ExpectInvalid(t, {"'range'", "below"});
  t = ValidTree();
  Dev(t, 0).children[0].Set("range", Be64(0x2000));
  ExpectInvalid(t, {"'range'", "16 bytes"});
}

TEST(HostPlatformDtbErrorTest, DuplicateBdf) {
  Node t = ValidTree();
  Dev(t, 1).Set("bdf", Str("01:00.0"));
  ExpectInvalid(
      t, {"/vfio-host-model/device@2", "'bdf'", "duplicate", "0000:01:00.0"});
}

TEST(HostPlatformDtbErrorTest, BadBdfText) {
  Node t = ValidTree();
  Dev(t, 0).Set("bdf", Str("0000:01:40.0"));
  ExpectInvalid(t, {"device@1", "'bdf'", "0000:01:40.0"});
  t = ValidTree();
  Dev(t, 0).Set("bdf", Be32(1));  // not a string
  ExpectInvalid(t, {"device@1", "'bdf'", "string"});
}

TEST(HostPlatformDtbErrorTest, ApertureBitsOutOfRange) {
  for (uint32_t bits : {0u, 11u, 65u, 0xffffffffu}) {
    Node t = ValidTree();
    Dev(t, 0).Set("aperture-bits", Be32(bits));
    ExpectInvalid(t, {"device@1", "'aperture-bits'", "12..64"});
  }
}

TEST(HostPlatformDtbErrorTest, WrongCellCount) {
  Node t = ValidTree();
  Dev(t, 0).Set("iommu-group", Be64(1));
  ExpectInvalid(t, {"device@1", "'iommu-group'", "4 bytes"});
  t = ValidTree();
  Model(t).Set("pgsize-bitmap", "abc");
  ExpectInvalid(t, {"'pgsize-bitmap'", "64-bit"});
}

TEST(HostPlatformDtbErrorTest, BadIdsAndBar2Size) {
  Node t = ValidTree();
  Dev(t, 0).Set("vendor-id", Be32(0xffff));
  ExpectInvalid(t, {"'vendor-id'", "0xffff"});
  t = ValidTree();
  Dev(t, 0).Set("device-id", Be32(0x10000));
  ExpectInvalid(t, {"'device-id'"});
  for (uint64_t size : {0ull, 0x800ull, 0x3000ull, 1ull << 41}) {
    t = ValidTree();
    Dev(t, 0).Set("bar2-size", Be64(size));
    ExpectInvalid(t, {"device@1", "'bar2-size'", "power of two"});
  }
}

TEST(HostPlatformDtbErrorTest, BadPageSizeBitmap) {
  for (uint64_t bitmap : {0ull, 0x40201800ull}) {
    Node t = ValidTree();
    Model(t).Set("pgsize-bitmap", Be64(bitmap));
    ExpectInvalid(t, {"/vfio-host-model", "'pgsize-bitmap'"});
  }
}

TEST(HostPlatformDtbErrorTest, DmaEntryLimitOverride) {
  Node t = ValidTree();
  Model(t).Set("dma-entry-limit", Be32(12));
  absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(Blob(t));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->dma_entry_limit, 12u);
  Model(t).Set("dma-entry-limit", Be64(12));
  ExpectInvalid(t, {"'dma-entry-limit'", "4 bytes"});
}

TEST(HostPlatformDtbErrorTest, UnknownPropertiesAndNodes) {
  Node t = ValidTree();
  Dev(t, 0).Set("aperture-bit", Be32(48));
  ExpectInvalid(t, {"device@1", "'aperture-bit'", "unknown property"});
  t = ValidTree();
  Model(t).Set("dma-limit", Be32(1));
  ExpectInvalid(t, {"/vfio-host-model", "'dma-limit'", "unknown property"});
  t = ValidTree();
  Model(t).children.push_back(Node{"bridge@0", {}, {}});
  ExpectInvalid(t, {"/vfio-host-model/bridge@0", "unknown node"});
  t = ValidTree();
  Dev(t, 0).children.push_back(Node{"msi@0", {}, {}});
  ExpectInvalid(t, {"/vfio-host-model/device@1/msi@0", "unknown node"});
}

TEST(HostPlatformDtbErrorTest, WriterRefusesWhatTheParserWouldRefuse) {
  HostPlatform p = DefaultHostPlatform();
  p.devices.push_back(p.devices[0]);
  EXPECT_EQ(HostPlatformToDtb(p).status().code(),
            absl::StatusCode::kInvalidArgument);
  p = DefaultHostPlatform();
  p.devices[0].reserved.push_back({0xfee00000, 0xfee00000, ResvType::kMsi});
  EXPECT_EQ(HostPlatformToDtb(p).status().code(),
            absl::StatusCode::kInvalidArgument);
  p = DefaultHostPlatform();
  p.devices[0].aperture_bits = 70;
  EXPECT_EQ(HostPlatformToDtb(p).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Truncations at every length and random bit flips of a valid blob: each
// parse either succeeds or fails with kInvalidArgument; none may crash
// (run under ASan in make asan).
TEST(HostPlatformDtbFuzzTest, DamagedBlobsNeverCrash) {
  absl::StatusOr<std::vector<uint8_t>> blob =
      HostPlatformToDtb(DefaultHostPlatform());
  ASSERT_TRUE(blob.ok());
  int ok = 0;
  for (size_t len = 0; len <= blob->size(); ++len) {
    absl::StatusOr<HostPlatform> p =
        ParseHostPlatformDtb(absl::MakeConstSpan(blob->data(), len));
    if (p.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(ok, 1);  // only the whole blob
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = *blob;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      const size_t bit = rng() % (b.size() * 8);
      b[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    }
    absl::StatusOr<HostPlatform> p = ParseHostPlatformDtb(b);
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace viommu::vfio
