// VirtioIommu with host IOMMU devices set on its endpoints (issue 13 part
// 5, beyond QEMU 7.2): PROBE reporting the hosts' holes, MAPs the hosts
// cannot take refused with RANGE, host map failures as DEVERR, and the
// config geometry following the hosts until FEATURES_OK
// (docs/virtio-iommu.md, "Host IOMMU devices: beyond QEMU 7.2").
#include "tests/hw/iommu/virtio/virtio_iommu_test_support.h"

namespace viommu::virtio_iommu {
namespace {

// --- host IOMMU devices (issue 13 part 5, beyond QEMU 7.2) ---

struct Resv {
  uint8_t subtype;
  uint64_t first;
  uint64_t last;
  friend bool operator==(const Resv&, const Resv&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Resv& r) {
    return os << "{" << int{r.subtype} << " 0x" << std::hex << r.first
              << "-0x" << r.last << "}";
  }
};
constexpr Resv kMsiResv = {kResvMemMsi, kMsiWindowFirst, kMsiWindowLast};

devcore::HostIommuDevice Host(std::vector<Range> ranges,
                              uint64_t page_size_mask = 0x40201000) {
  devcore::HostIommuDevice h;
  h.name = "vfio-pci 'test'";
  h.page_size_mask = page_size_mask;
  h.iova_ranges = std::move(ranges);
  return h;
}

class VirtioIommuHostTest : public VirtioIommuTest {
 protected:
  // The RESV_MEM properties of a PROBE of `ep`, checking the reply's
  // layout (length 20, reserved bytes zero, zeros after the last one).
  std::vector<Resv> ProbeRegions(uint16_t ep) {
    std::vector<Resv> out;
    EXPECT_EQ(Send(ProbeReq(ep), kProbeReplySize), kStatusOk);
    size_t at = 0;
    while (at + 24 <= kProbeSize && LoadLe(&reply_[at], 2) != 0) {
      EXPECT_EQ(LoadLe(&reply_[at], 2), kProbeTypeResvMem);
      EXPECT_EQ(LoadLe(&reply_[at + 2], 2), kResvMemLength);
      EXPECT_EQ(reply_[at + 5] | reply_[at + 6] | reply_[at + 7], 0);
      out.push_back(
          {reply_[at + 4], LoadLe(&reply_[at + 8], 8), LoadLe(&reply_[at + 16], 8)});
      at += 24;
    }
    for (size_t i = at; i < kProbeSize; ++i) EXPECT_EQ(reply_[i], 0) << i;
    return out;
  }
};

TEST_F(VirtioIommuHostTest, ProbeReportsTheHostsHolesAsReservedAndMsiAsMsi) {
  // A hole below 4 KiB, the host's own MSI hole (already reported as MSI)
  // and everything above a 48-bit aperture.
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kEdu,
                                       Host({{0x1000, 0xfedfffff},
                                             {0xfef00000, 0xffffffffffff}}))
                  .ok());
  EXPECT_THAT(ProbeRegions(kEdu),
              ElementsAre(kMsiResv, Resv{kResvMemReserved, 0, 0xfff},
                          Resv{kResvMemReserved, uint64_t{1} << 48,
                               ~uint64_t{0}}));
  // Other endpoints are answered as QEMU 7.2.
  EXPECT_THAT(ProbeRegions(kLpc), ElementsAre(kMsiResv));
  viommu_->UnsetHostIommuDevice(0, kEdu);
  EXPECT_THAT(ProbeRegions(kEdu), ElementsAre(kMsiResv));
}

TEST_F(VirtioIommuHostTest, AHoleAroundTheMsiWindowIsSplitSoNothingOverlaps) {
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kEdu,
                                       Host({{0, 0xfebfffff},
                                             {0xff000000, ~uint64_t{0}}}))
                  .ok());
  EXPECT_THAT(ProbeRegions(kEdu),
              ElementsAre(kMsiResv,
                          Resv{kResvMemReserved, 0xfec00000, 0xfedfffff},
                          Resv{kResvMemReserved, 0xfef00000, 0xfeffffff}));
}

TEST_F(VirtioIommuHostTest, UnknownHostRangesReserveNothing) {
  ASSERT_TRUE(viommu_->SetHostIommuDevice(0, kEdu, Host({})).ok());
  EXPECT_THAT(ProbeRegions(kEdu), ElementsAre(kMsiResv));
}

TEST_F(VirtioIommuHostTest, HolesBeyondProbeSizeStretchTheLastRegion) {
  // 30 valid pages with a page-sized hole before each: 32 holes with the
  // top one split around the MSI window; 20 fit.
  std::vector<Range> ranges;
  for (uint64_t i = 0; i < 30; ++i) {
    ranges.push_back({0x2000 * i + 0x1000, 0x2000 * i + 0x1fff});
  }
  ASSERT_TRUE(viommu_->SetHostIommuDevice(0, kEdu, Host(ranges)).ok());
  const std::vector<Resv> got = ProbeRegions(kEdu);
  ASSERT_EQ(got.size(), 21u);
  EXPECT_EQ(got[0], kMsiResv);
  EXPECT_EQ(got[1], (Resv{kResvMemReserved, 0, 0xfff}));
  EXPECT_EQ(got[18], (Resv{kResvMemReserved, 0x22000, 0x22fff}));
  // The 19th hole covers the rest: more reserved than the host has, never
  // less, and still split around the MSI window.
  EXPECT_EQ(got[19], (Resv{kResvMemReserved, 0x24000, 0xfedfffff}));
  EXPECT_EQ(got[20], (Resv{kResvMemReserved, 0xfef00000, ~uint64_t{0}}));
}

// A stand-in for a host container on an endpoint's IOMMU region: counts
// the MAP events it "fails" (those reaching `fail_from` and above), as
// VfioContainer counts giommu_map_errors.
class FailingHost final : public memory::IommuNotifier {
 public:
  void Notify(const IommuEvent& e) override {
    if (e.type == IommuEventType::kMap && e.entry.iova >= fail_from) {
      ++failures;
    }
  }
  uint64_t fail_from = ~uint64_t{0};
  uint64_t failures = 0;
};

TEST_F(VirtioIommuHostTest, MapsTheHostCannotTakeAreRangeAndTouchNothing) {
  // A 39-bit host aperture with the MSI hole, 4 KiB smallest page.
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kEdu,
                                       Host({{0, 0xfedfffff},
                                             {0xfef00000, (uint64_t{1} << 39) - 1}}))
                  .ok());
  ASSERT_EQ(Send(AttachReq(1, kEdu)), kStatusOk);
  ASSERT_EQ(Send(MapReq(1, 0x100000, 0x100fff, 0x200000)), kStatusOk);
  RegisterNotifier();
  events_.Take();  // the replay
  // In the host's MSI hole, across its edge, above the aperture, and not
  // aligned to its smallest page (IOVA, end, phys).
  EXPECT_EQ(Send(MapReq(1, 0xfee00000, 0xfee00fff, 0x300000)), kStatusRange);
  EXPECT_EQ(Send(MapReq(1, 0xfedff000, 0xfee00fff, 0x300000)), kStatusRange);
  EXPECT_EQ(Send(MapReq(1, uint64_t{1} << 39, (uint64_t{1} << 39) + 0xfff,
                        0x300000)),
            kStatusRange);
  EXPECT_EQ(Send(MapReq(1, 0x400800, 0x400fff, 0x300000)), kStatusRange);
  EXPECT_EQ(Send(MapReq(1, 0x400000, 0x4007ff, 0x300000)), kStatusRange);
  EXPECT_EQ(Send(MapReq(1, 0x400000, 0x400fff, 0x300800)), kStatusRange);
  EXPECT_THAT(events_.Take(), IsEmpty());
  EXPECT_THAT(Mappings(1), ElementsAre(MappingInfo{0x100000, 0x100fff,
                                                    0x200000, 3}));
  // The earlier checks keep their statuses; a valid MAP goes through.
  EXPECT_EQ(Send(MapReq(1, 0x100000, 0x100fff, 0x300000)), kStatusInval);
  EXPECT_EQ(Send(MapReq(1, 0x400000, 0x400fff, 0x300000)), kStatusOk);
  EXPECT_THAT(events_.Take(), ElementsAre(MapEv(0x400000, 0xfff, 0x300000)));
}

TEST_F(VirtioIommuHostTest, OnlyDomainsWithAHostDeviceAreChecked) {
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kEdu,
                                       Host({{0, 0xfedfffff},
                                             {0xfef00000, 0xffffffffff}}))
                  .ok());
  ASSERT_EQ(Send(AttachReq(1, kLpc)), kStatusOk);
  ASSERT_EQ(Send(AttachReq(2, kAhci)), kStatusOk);
  ASSERT_EQ(Send(AttachReq(2, kEdu)), kStatusOk);
  // QEMU 7.2: anything goes without a host device.
  EXPECT_EQ(Send(MapReq(1, 0xfee00000, 0xfee00fff, 0x300000)), kStatusOk);
  EXPECT_EQ(Send(MapReq(1, 0x400800, 0x400fff, 0x300000)), kStatusOk);
  EXPECT_EQ(Send(MapReq(2, 0xfee00000, 0xfee00fff, 0x300000)), kStatusRange);
  // Once the host endpoint leaves, its domain is unchecked again.
  ASSERT_EQ(Send(DetachReq(2, kEdu)), kStatusOk);
  EXPECT_EQ(Send(MapReq(2, 0xfee00000, 0xfee00fff, 0x300000)), kStatusOk);
}

TEST_F(VirtioIommuHostTest, AHostMapFailureIsDeverrAndLeavesTheDomainAsBefore) {
  FailingHost host;
  devcore::HostIommuDevice hiod = Host({});
  hiod.map_failures = [&host] { return host.failures; };
  ASSERT_TRUE(viommu_->SetHostIommuDevice(0, kEdu, hiod).ok());
  ASSERT_EQ(Send(AttachReq(1, kEdu)), kStatusOk);
  auto h = viommu_->IommuRegion(kEdu)->iommu()->Register(
      &host, {.flags = memory::kNotifyIotlbEvents});
  ASSERT_TRUE(h.ok()) << h.status();
  RegisterNotifier();
  ASSERT_EQ(Send(MapReq(1, 0x100000, 0x100fff, 0x200000)), kStatusOk);
  host.fail_from = 0x800000;
  // Two blocks: the host takes the first and fails the second.
  EXPECT_EQ(Send(MapReq(1, 0x7ff000, 0x800fff, 0x300000)), kStatusDeverr);
  EXPECT_EQ(host.failures, 1u);
  EXPECT_THAT(Mappings(1), ElementsAre(MappingInfo{0x100000, 0x100fff,
                                                    0x200000, 3}));
  // Every notifier had its MAP taken back, block for block.
  EXPECT_THAT(events_.Take(),
              ElementsAre(MapEv(0x100000, 0xfff, 0x200000),
                          MapEv(0x7ff000, 0xfff, 0x300000),
                          MapEv(0x800000, 0xfff, 0x301000),
                          UnmapEv(0x7ff000, 0xfff, 0x300000),
                          UnmapEv(0x800000, 0xfff, 0x301000)));
  EXPECT_EQ(EduRead32(0x7ff000), 0u);
  EXPECT_EQ(faults_.faults.size(), 1u);  // unmapped, as before the MAP
  // The range is free: once the host takes it, the same MAP is OK.
  host.fail_from = ~uint64_t{0};
  EXPECT_EQ(Send(MapReq(1, 0x7ff000, 0x800fff, 0x300000)), kStatusOk);
  h->Reset();
}

TEST_F(VirtioIommuHostTest, ConfigGeometryFollowsTheHostsUntilFeaturesOk) {
  auto config = [&] {
    std::array<uint8_t, kConfigSize> c{};
    viommu_->ReadConfig(c);
    return VirtioIommu::Geometry{LoadLe(&c[0], 8), LoadLe(&c[8], 8),
                                 LoadLe(&c[16], 8)};
  };
  const uint64_t top39 = (uint64_t{1} << 39) - 1, top48 = (uint64_t{1} << 48) - 1;
  EXPECT_EQ(config(), (VirtioIommu::Geometry{0xfffffffffffff000, 0, ~uint64_t{0}}));
  // 4K|2M|1G with a 39-bit aperture: the mask is the host's, the input
  // range its aperture (holes inside it are PROBE's business).
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kEdu,
                                       Host({{0, 0xfedfffff},
                                             {0xfef00000, top39}}, 0x40201000))
                  .ok());
  EXPECT_EQ(config(), (VirtioIommu::Geometry{0x40201000, 0, top39}));
  // A second host: what both can do.
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kLpc, Host({{0x1000, top48}}, 0x201000))
                  .ok());
  EXPECT_EQ(config(), (VirtioIommu::Geometry{0x201000, 0x1000, top39}));
  viommu_->UnsetHostIommuDevice(0, kEdu);
  EXPECT_EQ(config(), (VirtioIommu::Geometry{0x201000, 0x1000, top48}));
  // FEATURES_OK freezes it: a later host narrows MAPs and PROBE, not the
  // config the driver has read.
  viommu_->FreezeGeometry();
  ASSERT_TRUE(viommu_
                  ->SetHostIommuDevice(0, kEdu, Host({{0, top39}}, 0x40201000))
                  .ok());
  EXPECT_EQ(config(), (VirtioIommu::Geometry{0x201000, 0x1000, top48}));
  ASSERT_EQ(Send(AttachReq(1, kEdu)), kStatusOk);
  EXPECT_EQ(Send(MapReq(1, top39 + 1, top39 + 0x1000, 0x300000)), kStatusRange);
  // A device reset lets the next driver see the hosts again.
  viommu_->DeviceReset();
  EXPECT_EQ(config(), (VirtioIommu::Geometry{0x201000, 0x1000, top39}));
}

TEST_F(VirtioIommuHostTest, HostsThatCannotShareTheGeometryAreRefused) {
  ASSERT_TRUE(viommu_->SetHostIommuDevice(0, kEdu, Host({{0, 0xffffffff}}, 0x1000))
                  .ok());
  // No page size in common.
  absl::Status s =
      viommu_->SetHostIommuDevice(0, kLpc, Host({{0, 0xffffffff}}, 0x2000));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("'test'"));
  // No IOVA in common.
  EXPECT_EQ(viommu_
                ->SetHostIommuDevice(0, kLpc,
                                     Host({{uint64_t{1} << 32, ~uint64_t{0}}},
                                          0x1000))
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(viommu_->host_device_count(), 1u);
  // Once the driver uses 4 KiB pages, a host without them is refused;
  // before, it would have narrowed the mask.
  viommu_->UnsetHostIommuDevice(0, kEdu);
  viommu_->FreezeGeometry();
  EXPECT_EQ(viommu_->SetHostIommuDevice(0, kLpc, Host({}, 0x10000)).code(),
            absl::StatusCode::kFailedPrecondition);
  viommu_->DeviceReset();
  EXPECT_TRUE(viommu_->SetHostIommuDevice(0, kLpc, Host({}, 0x10000)).ok());
  EXPECT_EQ(viommu_->CurrentGeometry().page_size_mask, 0x10000u);
}

TEST_F(VirtioIommuHostTest, RangesThatShrinkLaterNarrowProbeAndMaps) {
  // The container's ranges now, as HostIommuDevice::current_iova_ranges
  // reports them.
  std::vector<Range> now = {{0, 0xfedfffff}, {0xfef00000, 0xffffffffffff}};
  devcore::HostIommuDevice hiod = Host(now);
  hiod.current_iova_ranges = [&now]() -> const std::vector<Range>& {
    return now;
  };
  ASSERT_TRUE(viommu_->SetHostIommuDevice(0, kEdu, hiod).ok());
  ASSERT_EQ(Send(AttachReq(1, kEdu)), kStatusOk);
  EXPECT_EQ(Send(MapReq(1, 0x10000000000, 0x10000000fff, 0x300000)), kStatusOk);
  now.back().last = (uint64_t{1} << 39) - 1;  // a 39-bit device joined
  EXPECT_THAT(ProbeRegions(kEdu),
              ElementsAre(kMsiResv, Resv{kResvMemReserved, uint64_t{1} << 39,
                                         ~uint64_t{0}}));
  EXPECT_EQ(Send(MapReq(1, 0x20000000000, 0x20000000fff, 0x300000)),
            kStatusRange);
  EXPECT_EQ(Send(MapReq(1, 0x40000000, 0x40000fff, 0x300000)), kStatusOk);
  // Before FEATURES_OK the config follows too.
  EXPECT_EQ(viommu_->CurrentGeometry().input_last, (uint64_t{1} << 39) - 1);
}

}  // namespace
}  // namespace viommu::virtio_iommu
