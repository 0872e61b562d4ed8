// virtio-iommu with a real container (VfioManager over the model host) on
// an endpoint's DMA root: the host facts reach the guest (PROBE, MAP
// checks), and they follow the container when its valid IOVA ranges
// shrink at runtime (a group with a narrower aperture joins it:
// VFIO_IOVA_RANGES_CHANGED, issue 13 part 5).
#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/memory/address_space.h"
#include "viommu/util/le_bytes.h"
#include "viommu/vfio/container.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/vfio_manager.h"

namespace viommu::virtio_iommu {
namespace {

using ::testing::ElementsAre;

constexpr uint8_t kEp = 0x20;  // 00:04.0, the passthrough endpoint
constexpr uint64_t kTop39 = (uint64_t{1} << 39) - 1;
constexpr uint64_t kTop48 = (uint64_t{1} << 48) - 1;

std::vector<uint8_t> Req(std::initializer_list<std::pair<uint64_t, int>> f) {
  std::vector<uint8_t> out;
  for (auto [v, n] : f) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> 8 * i));
  }
  return out;
}

class VirtioIommuVfioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = hw::Q35Machine::Create({.ram_size = 64 << 20});
    ASSERT_TRUE(m.ok()) << m.status();
    m_ = *std::move(m);
    ASSERT_TRUE(m_->AddDevice({.driver = "virtio-iommu-pci",
                               .props = {{"addr", "03.0"}}})
                    .ok());
    viommu_ = dynamic_cast<VirtioIommu*>(m_->viommu());
    ASSERT_NE(viommu_, nullptr);
    auto host = vfio::model::ModelHost::Create(vfio::DefaultHostPlatform());
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    vfio_ = std::make_unique<vfio::VfioManager>(
        host_.get(),
        vfio::VfioManager::Options{
            .host_page_size = 4096,
            .on_iova_ranges_changed =
                [this](uint32_t, const std::vector<Range>& r) {
                  changes_.push_back(r);
                }});
    as_ = std::make_unique<memory::AddressSpace>(
        &m_->memory(), viommu_->DmaRoot(0, kEp), "virtio-iommu-04.0");
  }
  void TearDown() override {
    if (viommu_ != nullptr) viommu_->UnsetHostIommuDevice(0, kEp);
    vfio_.reset();  // containers go before their address space
    as_.reset();
  }
  void Plug(const char* bdf) {
    auto addr = vfio::HostPciAddress::Parse(bdf);
    ASSERT_TRUE(addr.ok());
    ASSERT_TRUE(vfio_->AttachDevice(as_.get(), {.host = *addr}).ok());
  }
  uint8_t Send(const std::vector<uint8_t>& out, uint64_t in = 4) {
    const RequestResult r = viommu_->HandleRequest(out, in, reply_);
    return r.used_len == kProbeReplySize ? reply_[kProbeSize] : reply_[0];
  }
  uint8_t Map(uint64_t first, uint64_t last, uint64_t phys) {
    return Send(Req({{kReqMap, 4}, {1, 4}, {first, 8}, {last, 8}, {phys, 8},
                     {3, 4}}));
  }
  // The RESERVED regions of the endpoint's PROBE (after the MSI one).
  std::vector<Range> Reserved() {
    std::vector<uint8_t> probe = Req({{kReqProbe, 4}, {kEp, 4}});
    probe.resize(kProbeReqSize, 0);
    EXPECT_EQ(Send(probe, kProbeReplySize), kStatusOk);
    EXPECT_EQ(reply_[4], kResvMemMsi);
    std::vector<Range> out;
    for (size_t at = 24; at + 24 <= kProbeSize && reply_[at] != 0; at += 24) {
      EXPECT_EQ(reply_[at + 4], kResvMemReserved);
      out.push_back({LoadLe(&reply_[at + 8], 8), LoadLe(&reply_[at + 16], 8)});
    }
    return out;
  }

  std::unique_ptr<hw::Q35Machine> m_;
  VirtioIommu* viommu_ = nullptr;
  std::unique_ptr<vfio::model::ModelHost> host_;
  std::unique_ptr<vfio::VfioManager> vfio_;
  std::unique_ptr<memory::AddressSpace> as_;
  std::vector<std::vector<Range>> changes_;
  std::array<uint8_t, kProbeReplySize> reply_{};
};

TEST_F(VirtioIommuVfioTest, ANarrowerGroupJoiningTheContainerNarrowsProbeAndMaps) {
  Plug("0000:01:00.0");  // 48-bit aperture
  auto hiod = vfio_->HostIommuInfo(*vfio::HostPciAddress::Parse("0000:01:00.0"));
  ASSERT_TRUE(hiod.ok()) << hiod.status();
  ASSERT_TRUE(viommu_->SetHostIommuDevice(0, kEp, *hiod).ok());
  EXPECT_THAT(Reserved(), ElementsAre(Range{kTop48 + 1, ~uint64_t{0}}));
  ASSERT_EQ(Send(Req({{kReqAttach, 4}, {1, 4}, {kEp, 4}, {0, 8}})), kStatusOk);
  ASSERT_EQ(Map(0x10'0000, 0x10'0fff, 0x20'0000), kStatusOk);
  vfio::VfioContainer* c =
      vfio_->ContainerOf(*vfio::HostPciAddress::Parse("0000:01:00.0"));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->mappings().size(), 1u);
  // 0000:03:00.0 (39 bits) joins the same container: the ranges shrink
  // and the change is reported, as for any vIOMMU (QMP
  // VFIO_IOVA_RANGES_CHANGED comes from this callback).
  Plug("0000:03:00.0");
  EXPECT_EQ(vfio_->ContainerOf(*vfio::HostPciAddress::Parse("0000:03:00.0")),
            c);
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0].back().last, kTop39);
  // Later PROBEs and MAPs follow the container.
  EXPECT_THAT(Reserved(), ElementsAre(Range{kTop39 + 1, ~uint64_t{0}}));
  EXPECT_EQ(Map(kTop39 + 1, kTop39 + 0x1000, 0x30'0000), kStatusRange);
  EXPECT_EQ(Map(0x20'0000, 0x20'0fff, 0x30'0000), kStatusOk);
  EXPECT_EQ(c->mappings().size(), 2u);
}

}  // namespace
}  // namespace viommu::virtio_iommu
