// tests/hw/iommu/virtio/virtio_iommu_test_support.h — what the
// virtio-iommu unit tests share: request builders (the bytes a guest lays
// out), fault and notifier-event recorders, and VirtioIommuTest, a q35
// machine with virtio-iommu-pci at 03.0 and edu at 04.0.
//
//   TEST_F(VirtioIommuTest, Something) {
//     EXPECT_EQ(Send(AttachReq(1, kEdu)), kStatusOk);
//   }
#ifndef VIOMMU_TESTS_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_TEST_SUPPORT_H_
#define VIOMMU_TESTS_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_TEST_SUPPORT_H_

#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/util/le_bytes.h"

namespace viommu::virtio_iommu {

using hw::Q35Machine;
using memory::IommuEvent;
using memory::IommuEventType;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint16_t kEdu = 0x20;    // 00:04.0
constexpr uint16_t kSelf = 0x18;   // 00:03.0, the IOMMU itself
constexpr uint16_t kLpc = 0xf8;    // 00:1f.0
constexpr uint16_t kAhci = 0xfa;   // 00:1f.2

// Request bytes (the readable part), as the guest lays them out.
inline std::vector<uint8_t> Bytes(std::initializer_list<std::pair<uint64_t, int>> f) {
  std::vector<uint8_t> out;
  for (auto [v, n] : f) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> 8 * i));
  }
  return out;
}
inline std::vector<uint8_t> AttachReq(uint32_t domain, uint32_t ep, uint32_t flags = 0,
                               uint32_t rsvd = 0) {
  return Bytes({{kReqAttach, 4}, {domain, 4}, {ep, 4}, {flags, 4}, {rsvd, 4}});
}
inline std::vector<uint8_t> DetachReq(uint32_t domain, uint32_t ep) {
  return Bytes({{kReqDetach, 4}, {domain, 4}, {ep, 4}, {0, 8}});
}
inline std::vector<uint8_t> MapReq(uint32_t domain, uint64_t first, uint64_t last,
                            uint64_t phys, uint32_t flags = 3) {
  return Bytes({{kReqMap, 4}, {domain, 4}, {first, 8}, {last, 8}, {phys, 8},
                {flags, 4}});
}
inline std::vector<uint8_t> UnmapReq(uint32_t domain, uint64_t first, uint64_t last) {
  return Bytes({{kReqUnmap, 4}, {domain, 4}, {first, 8}, {last, 8}, {0, 4}});
}
inline std::vector<uint8_t> ProbeReq(uint32_t ep) {
  std::vector<uint8_t> r = Bytes({{kReqProbe, 4}, {ep, 4}});
  r.resize(kProbeReqSize, 0);
  return r;
}

struct Fault {
  uint8_t reason;
  uint32_t flags;
  uint32_t endpoint;
  uint64_t addr;
  friend bool operator==(const Fault&, const Fault&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Fault& f) {
    return os << "{reason " << int{f.reason} << " flags 0x" << std::hex
              << f.flags << " ep 0x" << f.endpoint << " addr 0x" << f.addr
              << "}";
  }
};

class FaultRecorder final : public FaultSink {
 public:
  bool DeliverFault(std::span<const uint8_t, kFaultSize> r) override {
    // Reserved bytes stay zero.
    EXPECT_EQ(r[1] | r[2] | r[3] | r[12] | r[13] | r[14] | r[15], 0);
    faults.push_back({r[0], static_cast<uint32_t>(LoadLe(&r[4], 4)),
                      static_cast<uint32_t>(LoadLe(&r[8], 4)),
                      LoadLe(&r[16], 8)});
    return accept;
  }
  std::vector<Fault> faults;
  bool accept = true;
};

struct Ev {
  IommuEventType type;
  uint64_t iova;
  uint64_t mask;
  uint64_t phys;
  int perm;
  friend bool operator==(const Ev&, const Ev&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Ev& e) {
    return os << (e.type == IommuEventType::kMap ? "MAP" : "UNMAP") << " 0x"
              << std::hex << e.iova << "/0x" << e.mask << "->0x" << e.phys
              << " perm " << e.perm;
  }
};
Ev MapEv(uint64_t iova, uint64_t mask, uint64_t phys, int perm = 3) {
  return {IommuEventType::kMap, iova, mask, phys, perm};
}
Ev UnmapEv(uint64_t iova, uint64_t mask, uint64_t phys) {
  return {IommuEventType::kUnmap, iova, mask, phys, 0};
}

class EventRecorder final : public memory::IommuNotifier {
 public:
  void Notify(const IommuEvent& e) override {
    events.push_back({e.type, e.entry.iova, e.entry.addr_mask,
                      e.entry.translated_addr, int{e.entry.perm}});
  }
  std::vector<Ev> Take() { return std::exchange(events, {}); }
  std::vector<Ev> events;
};

class VirtioIommuTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void Start(absl::btree_map<std::string, std::string> props) {
    props["addr"] = "03.0";
    auto m = Q35Machine::Create({.ram_size = 256 << 20});
    ASSERT_TRUE(m.ok()) << m.status();
    m_ = *std::move(m);
    ASSERT_TRUE(
        m_->AddDevice({.driver = "virtio-iommu-pci", .props = props}).ok());
    ASSERT_TRUE(
        m_->AddDevice({.driver = "edu", .props = {{"addr", "04.0"}}}).ok());
    viommu_ = dynamic_cast<VirtioIommu*>(m_->viommu());
    ASSERT_NE(viommu_, nullptr);
    viommu_->SetFaultSink(&faults_);
    edu_as_ = std::make_unique<memory::AddressSpace>(
        &m_->memory(), viommu_->DmaRoot(0, kEdu), "edu-dma");
  }
  void TearDown() override {
    handle_.Reset();
    edu_as_.reset();
    if (viommu_ != nullptr) viommu_->SetFaultSink(nullptr);
  }

  // Sends one request with a writable part of `in_size` bytes; returns the
  // status byte at offset 0 (or at probe_size for a full PROBE reply).
  uint8_t Send(const std::vector<uint8_t>& out, uint64_t in_size = 4) {
    last_ = viommu_->HandleRequest(out, in_size, reply_);
    if (last_.used_len == kProbeReplySize) return reply_[kProbeSize];
    return reply_[0];
  }
  void RegisterNotifier(uint16_t sid = kEdu) {
    auto h = viommu_->IommuRegion(sid)->iommu()->Register(
        &events_, {.flags = memory::kNotifyIotlbEvents});
    ASSERT_TRUE(h.ok()) << h.status();
    handle_ = std::move(*h);
  }
  std::vector<MappingInfo> Mappings(uint32_t domain) {
    return viommu_->DomainMappings(domain);
  }
  uint32_t EduRead32(uint64_t iova) {
    uint32_t v = 0;
    (void)edu_as_->Read(iova, &v, 4, memory::MemTxAttrs());
    return v;
  }

  std::unique_ptr<Q35Machine> m_;
  VirtioIommu* viommu_ = nullptr;
  std::unique_ptr<memory::AddressSpace> edu_as_;
  FaultRecorder faults_;
  EventRecorder events_;
  memory::IommuNotifierHandle handle_;
  std::array<uint8_t, kProbeReplySize> reply_{};
  RequestResult last_;
};

}  // namespace viommu::virtio_iommu

#endif  // VIOMMU_TESTS_HW_IOMMU_VIRTIO_VIRTIO_IOMMU_TEST_SUPPORT_H_
