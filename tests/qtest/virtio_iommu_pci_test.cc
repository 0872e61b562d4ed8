// virtio-iommu-pci through build/viommu's qtest interface: the test is the
// guest driver (virtqueues in guest RAM, notify writes, used ring and reply
// bytes read back) and edu (00:04.0, endpoint 0x20) does the DMA. Covers
// what the differential scenarios (tests/conformance/) cannot: malformed
// chains, batches, the cases where viommu differs from QEMU 7.2 by design
// (docs/virtio-iommu.md), and the machine-level rules.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/qtest/qmp_client.h"
#include "tests/qtest/unix_socket.h"
#include "tests/qtest/viommu_fixture.h"

namespace viommu::qtest {
namespace {

constexpr uint8_t kEdu = 0x20;
constexpr uint64_t kQueueSize = 256;
constexpr uint8_t kStatusNeedsReset = 0x40;
constexpr uint16_t kFlagNext = 1, kFlagWrite = 2;
enum : uint8_t { kOk = 0, kDeverr = 3, kInval = 4, kRange = 5, kNoent = 6 };

// Where the driver keeps its rings and buffers.
struct Ring {
  uint64_t desc, avail, used;
  uint16_t next_desc = 0;
  uint16_t avail_idx = 0;
};

class VirtioIommuQtest : public ViommuTest {
 protected:
  // The machine with edu (or, with `vfio`, the model host's 0000:01:00.0
  // passed through) at 04.0, and a QMP socket.
  void StartMachine(const std::string& iommu_props = "", bool vfio = false,
                    const std::string& host = "0000:01:00.0") {
    qmp_path_ = (std::filesystem::temp_directory_path() /
                 ("viommu-vi-qmp-" + std::to_string(getpid())))
                    .string();
    Start({"-m", "256M", "-device", "virtio-iommu-pci,addr=03.0" + iommu_props,
           "-device",
           vfio ? "vfio-pci,host=" + host + ",addr=04.0,id=v0"
                : "edu,addr=04.0,dma_mask=0xffffffffffffffff",
           "-qmp", "unix:" + qmp_path_ + ",server=on,wait=off"});
    if (HasFatalFailure()) return;
    QPciDevice iommu = *bus().Find(0x1057, 0x1af4);
    ASSERT_EQ(iommu.devfn(), 0x18);
    iommu.Enable();
    bar4_ = iommu.MapBar(4);
    QPciDevice edu(&bus(), kEdu);
    edu_ = edu.MapBar(0);
    edu.Enable();
    const int fd = ConnectUnix(qmp_path_);
    ASSERT_GE(fd, 0);
    qmp_ = std::make_unique<QmpClient>(fd);
    qmp_->ReadLine();  // greeting
    ASSERT_EQ(qmp_->Execute(R"({"execute": "qmp_capabilities"})"),
              R"({"return": {}})");
    // ACK, DRIVER, features (VERSION_1 + every device bit), FEATURES_OK.
    SetStatus(0);
    SetStatus(1);
    SetStatus(3);
    qts().Writel(bar4_ + 0x08, 0);
    qts().Writel(bar4_ + 0x0c, 0x77);
    qts().Writel(bar4_ + 0x08, 1);
    qts().Writel(bar4_ + 0x0c, 1);
    SetStatus(0xb);
    SetupQueue(0, &req_);
    SetupQueue(1, &evt_);
    SetStatus(0xf);
    ASSERT_EQ(Status(), 0xf);
  }
  void SetStatus(uint8_t s) { qts().Writeb(bar4_ + 0x14, s); }
  uint8_t Status() { return qts().Readb(bar4_ + 0x14); }
  void SetupQueue(uint16_t q, Ring* r) {
    qts().Writew(bar4_ + 0x16, q);
    qts().Writeq(bar4_ + 0x20, r->desc);
    qts().Writeq(bar4_ + 0x28, r->avail);
    qts().Writeq(bar4_ + 0x30, r->used);
    qts().Writew(bar4_ + 0x1c, 1);
  }
  void Desc(Ring* r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
            uint16_t next) {
    qts().Writeq(r->desc + 16 * i, addr);
    qts().Writeq(r->desc + 16 * i + 8,
                 len | uint64_t{flags} << 32 | uint64_t{next} << 48);
  }
  void Post(Ring* r, uint16_t head) {
    qts().Writew(r->avail + 4 + 2 * (r->avail_idx % kQueueSize), head);
    ++r->avail_idx;
    qts().Writew(r->avail + 2, r->avail_idx);
  }
  void Kick(unsigned q) { qts().Writew(bar4_ + 0x3000 + 4 * q, 0); }
  uint16_t UsedIdx(const Ring& r) { return qts().Readw(r.used + 2); }
  // The used entry {id, len} of slot `i`.
  uint64_t UsedLen(const Ring& r, uint16_t i) {
    return qts().Readl(r.used + 4 + 8 * (i % kQueueSize) + 4);
  }

  // Posts a request made of `outs` readable pieces and `ins` writable
  // buffer sizes (without kicking); returns the first writable address.
  uint64_t Post(const std::vector<std::vector<uint8_t>>& outs,
                const std::vector<uint32_t>& ins) {
    const uint16_t head = req_.next_desc;
    const size_t n = outs.size() + ins.size();
    uint64_t in_addr = 0;
    for (size_t k = 0; k < n; ++k) {
      const uint16_t i = static_cast<uint16_t>((head + k) % kQueueSize);
      const uint16_t next = static_cast<uint16_t>((i + 1) % kQueueSize);
      const uint16_t more = k + 1 < n ? kFlagNext : 0;
      const uint64_t addr = buf_;
      buf_ += 0x400;
      if (k < outs.size()) {
        qts().Memwrite(addr, outs[k]);
        Desc(&req_, i, addr, static_cast<uint32_t>(outs[k].size()), more, next);
      } else {
        if (in_addr == 0) in_addr = addr;
        qts().Memset(addr, 0x400, 0xaa);
        Desc(&req_, i, addr, ins[k - outs.size()], more | kFlagWrite, next);
      }
    }
    req_.next_desc = static_cast<uint16_t>((head + n) % kQueueSize);
    Post(&req_, head);
    return in_addr;
  }
  // One request, kicked; returns the status at `status_at` of the reply.
  uint8_t Request(const std::vector<uint8_t>& out, uint32_t in = 4,
                  uint32_t status_at = 0) {
    const uint64_t a = Post({out}, {in});
    Kick(0);
    return qts().Readb(a + status_at);
  }
  static std::vector<uint8_t> Le(std::initializer_list<std::pair<uint64_t, int>> f) {
    std::vector<uint8_t> out;
    for (auto [v, n] : f) {
      for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> 8 * i));
    }
    return out;
  }
  static std::vector<uint8_t> Attach(uint32_t d, uint32_t ep, uint32_t flags = 0) {
    return Le({{1, 4}, {d, 4}, {ep, 4}, {flags, 4}, {0, 4}});
  }
  static std::vector<uint8_t> Detach(uint32_t d, uint32_t ep) {
    return Le({{2, 4}, {d, 4}, {ep, 4}, {0, 8}});
  }
  static std::vector<uint8_t> Map(uint32_t d, uint64_t a, uint64_t b,
                                  uint64_t p, uint32_t flags = 3) {
    return Le({{3, 4}, {d, 4}, {a, 8}, {b, 8}, {p, 8}, {flags, 4}});
  }
  static std::vector<uint8_t> Unmap(uint32_t d, uint64_t a, uint64_t b) {
    return Le({{4, 4}, {d, 4}, {a, 8}, {b, 8}, {0, 4}});
  }
  static std::vector<uint8_t> Probe(uint32_t ep) {
    std::vector<uint8_t> r = Le({{5, 4}, {ep, 4}});
    r.resize(72, 0);
    return r;
  }
  void EventBuffers(int n, uint32_t size = 24) {
    for (int k = 0; k < n; ++k) {
      const uint16_t i = evt_.next_desc++;
      Desc(&evt_, i, 0x80'0000 + 0x40 * i, size, kFlagWrite, 0);
      Post(&evt_, i);
    }
    Kick(1);
  }
  // edu DMA of `cnt` bytes: RAM (through the IOMMU) -> edu buffer, or back.
  void EduDma(uint64_t src, uint64_t dst, uint64_t cnt, bool to_ram) {
    qts().Writeq(edu_ + 0x80, src);
    qts().Writeq(edu_ + 0x88, dst);
    qts().Writeq(edu_ + 0x90, cnt);
    qts().Writeq(edu_ + 0x98, to_ram ? 3 : 1);
    qts().ClockStep(100'000'000);
    ASSERT_EQ(qts().Readq(edu_ + 0x98) & 1, 0u);
  }

  void TearDown() override {
    qmp_.reset();
    if (!qmp_path_.empty()) unlink(qmp_path_.c_str());
    ViommuTest::TearDown();
  }
  // The mapping count of the one VFIO container (x-query-vfio).
  uint64_t HostMappings() {
    const std::string q = qmp_->Execute(R"({"execute": "x-query-vfio"})");
    const std::string key = "\"mappings\": ";
    const size_t at = q.find(key);
    EXPECT_NE(at, std::string::npos) << q;
    EXPECT_EQ(q.find(key, at + 1), std::string::npos) << "one container: " << q;
    return at == std::string::npos ? ~0ull
                                   : std::strtoull(q.c_str() + at + key.size(),
                                                   nullptr, 10);
  }

  std::string qmp_path_;
  std::unique_ptr<QmpClient> qmp_;
  uint64_t bar4_ = 0, edu_ = 0;
  Ring req_{0x10'0000, 0x10'1000, 0x10'2000};
  Ring evt_{0x11'0000, 0x11'1000, 0x11'2000};
  uint64_t buf_ = 0x20'0000;
};

TEST_F(VirtioIommuQtest, RequestsAreAnsweredWhenTheNotifyWriteReturns) {
  StartMachine();
  EXPECT_EQ(Request(Attach(1, kEdu)), kOk);
  EXPECT_EQ(UsedIdx(req_), 1);
  EXPECT_EQ(UsedLen(req_, 0), 4u);
  EXPECT_EQ(Request(Attach(1, 0x444)), kNoent);
  EXPECT_EQ(Request(Map(1, 0x1000, 0x1fff, 0x30'0000)), kOk);
  EXPECT_EQ(Request(Map(1, 0x1800, 0x27ff, 0)), kInval);
}

TEST_F(VirtioIommuQtest, ABatchOfRequestsIsAnsweredInOrder) {
  StartMachine();
  const uint64_t a = Post({Attach(1, kEdu)}, {4});
  const uint64_t b = Post({Map(1, 0, 0xfff, 0)}, {4});
  const uint64_t c = Post({Map(1, 0, 0xfff, 0)}, {4});
  Kick(0);
  EXPECT_EQ(UsedIdx(req_), 3);
  EXPECT_EQ(qts().Readb(a), kOk);
  EXPECT_EQ(qts().Readb(b), kOk);
  EXPECT_EQ(qts().Readb(c), kInval);
}

TEST_F(VirtioIommuQtest, SplitDescriptorsAndALongReplyBufferWork) {
  StartMachine();
  std::vector<uint8_t> req = Attach(1, kEdu);
  const uint64_t a = Post({{req.begin(), req.begin() + 3},
                           {req.begin() + 3, req.begin() + 11},
                           {req.begin() + 11, req.end()}},
                          {2, 14});
  Kick(0);
  EXPECT_EQ(qts().Readb(a), kOk);  // status at offset 0 of the writable part
  EXPECT_EQ(UsedLen(req_, 0), 4u);
  EXPECT_EQ(qts().Readb(a + 4), 0xaa);
}

TEST_F(VirtioIommuQtest, AWritablePartShorterThan4BytesNeedsAReset) {
  StartMachine();
  Post({Attach(1, kEdu)}, {2});
  Kick(0);
  EXPECT_EQ(UsedIdx(req_), 0);
  EXPECT_EQ(Status() & kStatusNeedsReset, kStatusNeedsReset);
  // Nothing more is processed until the device is reset.
  Post({Attach(1, kEdu)}, {4});
  Kick(0);
  EXPECT_EQ(UsedIdx(req_), 0);
}

TEST_F(VirtioIommuQtest, AReadablePartShorterThan4BytesNeedsAReset) {
  StartMachine();
  Post({{1, 0}}, {4});
  Kick(0);
  EXPECT_EQ(UsedIdx(req_), 0);
  EXPECT_EQ(Status() & kStatusNeedsReset, kStatusNeedsReset);
}

TEST_F(VirtioIommuQtest, ProbeWithAShortReplyBufferIsDeverr) {
  // QEMU 7.2 aborts here (gitlab #2359); viommu answers as 9.1.
  StartMachine();
  EXPECT_EQ(Request(Probe(kEdu), 100), kDeverr);
  EXPECT_EQ(UsedLen(req_, 0), 4u);
  EXPECT_EQ(Request(Probe(kEdu), 516, 512), kOk);
  EXPECT_EQ(UsedLen(req_, 1), 516u);
  EXPECT_EQ(qts().Readl(0x20'0000 + 0x400 * 3), 0x00140001u);
}

TEST_F(VirtioIommuQtest, SplitUnmapIsAtomic) {
  StartMachine();
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  for (uint64_t a : {0x0u, 0x1000u, 0x2000u}) {
    ASSERT_EQ(Request(Map(1, a, a + 0xfff, 0x30'0000 + a)), kOk);
  }
  EXPECT_EQ(Request(Unmap(1, 0x800, 0x2fff)), kRange);
  // Every mapping survived: re-mapping any of them overlaps.
  for (uint64_t a : {0x0u, 0x1000u, 0x2000u}) {
    EXPECT_EQ(Request(Map(1, a, a + 0xfff, 0)), kInval) << a;
  }
}

TEST_F(VirtioIommuQtest, SecondDetachIsNoent) {
  StartMachine();
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  EXPECT_EQ(Request(Detach(1, kEdu)), kOk);
  EXPECT_EQ(Request(Detach(1, kEdu)), kNoent);  // 7.2: INVAL
}

TEST_F(VirtioIommuQtest, EduDmaThroughAnUnalignedMappingIsExact) {
  StartMachine();
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  ASSERT_EQ(Request(Map(1, 0x700'0800, 0x700'0fff, 0x20'a000)), kOk);
  ASSERT_EQ(Request(Map(1, 0x800'0000, 0x800'0fff, 0x50'0000)), kOk);
  qts().Writeq(0x20'a000, 0x1122334455667788);
  qts().Writeq(0x20'a800, 0xdeadbeefdeadbeef);
  EduDma(0x700'0800, 0x40000, 8, false);
  EduDma(0x40000, 0x800'0000, 8, true);
  EXPECT_EQ(qts().Readq(0x50'0000), 0x1122334455667788u);  // 7.2: 0xdead...
}

TEST_F(VirtioIommuQtest, FaultRecordsReachTheEventQueue) {
  StartMachine();
  EventBuffers(2);
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  ASSERT_EQ(Request(Map(1, 0x1000, 0x1fff, 0x30'0000, 1)), kOk);
  EduDma(0x40000, 0x1000, 4, true);  // write to a read-only mapping
  EXPECT_EQ(UsedIdx(evt_), 1);
  EXPECT_EQ(UsedLen(evt_, 0), 24u);
  EXPECT_EQ(qts().Memread(0x80'0000, 24),
            Le({{2, 4}, {0x102, 4}, {kEdu, 4}, {0, 4}, {0x1000, 8}}));
}

TEST_F(VirtioIommuQtest, AnEventBufferSmallerThanARecordNeedsAReset) {
  StartMachine();
  EventBuffers(1, 16);
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  EduDma(0x2000, 0x40000, 4, false);
  EXPECT_EQ(UsedIdx(evt_), 0);
  EXPECT_EQ(Status() & kStatusNeedsReset, kStatusNeedsReset);
}


TEST_F(VirtioIommuQtest, APassthroughContainerFollowsTheEndpoint) {
  StartMachine("", /*vfio=*/true);
  EXPECT_TRUE(qmp_->Execute(R"({"execute": "x-query-vfio"})").find(
                  R"("address-space": "virtio-iommu-04.0")") !=
              std::string::npos);
  EXPECT_EQ(HostMappings(), 1u);  // bypass: all of RAM
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  EXPECT_EQ(HostMappings(), 0u);  // translated, nothing mapped
  ASSERT_EQ(Request(Map(1, 0x800'0000, 0x800'0fff, 0x30'0000)), kOk);
  ASSERT_EQ(Request(Map(1, 0x820'0000, 0x83f'ffff, 0x40'0000)), kOk);
  EXPECT_EQ(HostMappings(), 2u);
  // The host device reads IOVA 0x8200010 (GPA 0x400010) and writes IOVA
  // 0x8000000 (GPA 0x300000).
  qts().Memwrite(0x40'0010, {0xde, 0xad, 0xbe, 0xef});
  EduDma(0x820'0010, 0x40000, 4, false);
  EduDma(0x40000, 0x800'0000, 4, true);
  EXPECT_EQ(qts().Readl(0x30'0000), 0xefbeaddeu);
  ASSERT_EQ(Request(Unmap(1, 0x800'0000, 0x800'0fff)), kOk);
  EXPECT_EQ(HostMappings(), 1u);
  // DETACH: the domain's mappings leave the host; bypass maps RAM again.
  ASSERT_EQ(Request(Detach(1, kEdu)), kOk);
  EXPECT_EQ(HostMappings(), 1u);
  qts().Writeb(bar4_ + 0x2024, 0);  // bypass 0: nothing mapped
  EXPECT_EQ(HostMappings(), 0u);
  ASSERT_EQ(Request(Attach(2, kEdu)), kOk);
  ASSERT_EQ(Request(Map(2, 0x0, 0xfff, 0x30'0000)), kOk);
  EXPECT_EQ(HostMappings(), 1u);
  // System reset: domains gone, boot-bypass back: RAM identity.
  EXPECT_EQ(qmp_->Execute(R"({"execute": "system_reset"})"),
            R"({"return": {}})");
  EXPECT_EQ(HostMappings(), 1u);
}

// Beyond QEMU (issue 13 part 5): the passthrough endpoint's PROBE names
// what its host cannot map. The model host's 0000:02:00.0 has a 48-bit
// aperture, a direct-mapped region at 0xf000000 and the MSI window.
TEST_F(VirtioIommuQtest, ProbeOfAPassthroughEndpointReportsTheHostsHoles) {
  StartMachine("", /*vfio=*/true, "0000:02:00.0");
  const uint64_t a = Post({Probe(kEdu)}, {516});
  Kick(0);
  ASSERT_EQ(qts().Readb(a + 512), kOk);
  auto resv = [](uint8_t subtype, uint64_t first, uint64_t last) {
    return Le({{1, 2}, {20, 2}, {subtype, 4}, {first, 8}, {last, 8}});
  };
  std::vector<uint8_t> want = resv(1, 0xfee00000, 0xfeefffff);
  for (auto r : {resv(0, 0xf000000, 0xf0fffff),
                 resv(0, uint64_t{1} << 48, ~uint64_t{0})}) {
    want.insert(want.end(), r.begin(), r.end());
  }
  want.resize(512, 0);
  EXPECT_EQ(qts().Memread(a, 512), want);
  // Any other endpoint: the MSI window alone, as QEMU 7.2.
  const uint64_t b = Post({Probe(0)}, {516});
  Kick(0);
  std::vector<uint8_t> msi = resv(1, 0xfee00000, 0xfeefffff);
  msi.resize(512, 0);
  EXPECT_EQ(qts().Memread(b, 512), msi);
}

// Beyond QEMU: a MAP the host cannot take is RANGE before the host is
// touched; one the host fails is DEVERR and leaves the domain as before.
TEST_F(VirtioIommuQtest, MapsThePassthroughHostCannotTakeFailInTheStatus) {
  StartMachine("", /*vfio=*/true, "0000:02:00.0");
  ASSERT_EQ(Request(Attach(1, kEdu)), kOk);
  // The host's direct-mapped region, the MSI window, above 2^48, and an
  // IOVA off the host's 4 KiB page.
  EXPECT_EQ(Request(Map(1, 0xf000000, 0xf000fff, 0x30'0000)), kRange);
  EXPECT_EQ(Request(Map(1, 0xfee00000, 0xfee00fff, 0x30'0000)), kRange);
  EXPECT_EQ(Request(Map(1, uint64_t{1} << 48, (uint64_t{1} << 48) + 0xfff,
                        0x30'0000)),
            kRange);
  EXPECT_EQ(Request(Map(1, 0x800'0800, 0x800'17ff, 0x30'0000)), kRange);
  EXPECT_EQ(HostMappings(), 0u);
  // The host's next map call fails (ENOMEM): DEVERR, nothing kept.
  EXPECT_EQ(qmp_->Execute(
                R"({"execute": "x-debug-vfio-fail-map", "arguments": {"n": 1}})"),
            R"({"return": {}})");
  EXPECT_EQ(Request(Map(1, 0x800'0000, 0x800'0fff, 0x30'0000)), kDeverr);
  EXPECT_EQ(HostMappings(), 0u);
  // The same MAP again: the domain did not keep it, so it is not an
  // overlap, and the host takes it now.
  EXPECT_EQ(Request(Map(1, 0x800'0000, 0x800'0fff, 0x30'0000)), kOk);
  EXPECT_EQ(HostMappings(), 1u);
}

// Beyond QEMU 7.2: with a passthrough device plugged before the driver
// negotiates, input_range is the host's aperture (0000:03:00.0: 39 bits).
TEST_F(VirtioIommuQtest, InputRangeIsThePassthroughHostsAperture) {
  StartMachine("", /*vfio=*/true, "0000:03:00.0");
  EXPECT_EQ(qts().Readq(bar4_ + 0x2008), 0u);
  EXPECT_EQ(qts().Readq(bar4_ + 0x2010), (uint64_t{1} << 39) - 1);
  // The guest's granule stays 4 KiB (the model host maps 4 KiB pages).
  EXPECT_EQ(qts().Readq(bar4_ + 0x2000) & 0x1fff, 0x1000u);
}

// After FEATURES_OK the config is frozen: a hot-plugged passthrough
// device with a narrower aperture reaches the guest through PROBE and
// MAP's RANGE; a device reset lets the next driver see it in the config.
TEST_F(VirtioIommuQtest, AHotpluggedHostNarrowsMapsNotTheNegotiatedConfig) {
  StartMachine();
  ASSERT_EQ(qmp_->Execute(R"({"execute": "device_add", "arguments": {)"
                          R"("driver": "vfio-pci", "host": "0000:03:00.0", )"
                          R"("id": "hp", "addr": "06.0"}})"),
            R"({"return": {}})");
  EXPECT_EQ(qts().Readq(bar4_ + 0x2010), ~uint64_t{0});
  const uint64_t a = Post({Probe(0x30)}, {516});
  Kick(0);
  ASSERT_EQ(qts().Readb(a + 512), kOk);
  EXPECT_EQ(qts().Readb(a + 24 + 4), 0);  // RESERVED, after the MSI window
  EXPECT_EQ(qts().Readq(a + 24 + 8), uint64_t{1} << 39);
  EXPECT_EQ(qts().Readq(a + 24 + 16), ~uint64_t{0});
  ASSERT_EQ(Request(Attach(1, 0x30)), kOk);
  EXPECT_EQ(Request(Map(1, uint64_t{1} << 39, (uint64_t{1} << 39) + 0xfff,
                        0x30'0000)),
            kRange);
  EXPECT_EQ(Request(Map(1, 0x800'0000, 0x800'0fff, 0x30'0000)), kOk);
  SetStatus(0);
  EXPECT_EQ(qts().Readq(bar4_ + 0x2010), (uint64_t{1} << 39) - 1);
}

}  // namespace
}  // namespace viommu::qtest
