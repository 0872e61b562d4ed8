// tests/capi/capi_fixture.h — what the C API tests share: a context whose
// callbacks record what they see, guest RAM the test maps itself (as a VMM
// does), and a minimal VT-d guest driver that writes its tables straight
// into that RAM and programs the registers through viommu_mmio_access.
#ifndef VIOMMU_TESTS_CAPI_CAPI_FIXTURE_H_
#define VIOMMU_TESTS_CAPI_CAPI_FIXTURE_H_

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "viommu.h"
#include "viommu/hw/iommu/vtd_regs.h"

namespace viommu::capi::testing {

// A callback device (MMIO or, with VIOMMU_REGION_F_IO, ports) recording
// its accesses as "r OFF/SIZE" and "w OFF/SIZE=VALUE"; reads answer
// `value`, both return `result`.
struct RecordingDevice {
  std::vector<std::string> log;
  uint64_t value = 0x1122334455667788;
  int result = 0;
  static int Read(void* opaque, uint64_t off, uint64_t* data, uint32_t size) {
    auto* d = static_cast<RecordingDevice*>(opaque);
    d->log.push_back("r " + std::to_string(off) + "/" + std::to_string(size));
    *data = d->value;
    return d->result;
  }
  static int Write(void* opaque, uint64_t off, uint64_t data, uint32_t size) {
    auto* d = static_cast<RecordingDevice*>(opaque);
    d->log.push_back("w " + std::to_string(off) + "/" + std::to_string(size) +
                     "=" + std::to_string(data));
    return d->result;
  }
};

// A callback region of `d` at `addr` (guest-physical, or a port with
// VIOMMU_REGION_F_IO in `flags`).
inline viommu_region CallbackRegion(uint64_t addr, uint64_t len,
                                    RecordingDevice* d, uint32_t flags = 0,
                                    const char* name = "dev") {
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_MMIO;
  r.flags = flags;
  r.gpa = addr;
  r.len = len;
  r.read = &RecordingDevice::Read;
  r.write = &RecordingDevice::Write;
  r.opaque = d;
  r.name = name;
  return r;
}

// A RAM_DEVICE region (an mmap'd BAR) of `len` bytes at `hva`, at `gpa`.
inline viommu_region RamDeviceRegion(uint64_t gpa, uint64_t len, void* hva) {
  viommu_region r{};
  r.size = sizeof(r);
  r.kind = VIOMMU_REGION_RAM_DEVICE;
  r.gpa = gpa;
  r.len = len;
  r.hva = hva;
  r.fd = -1;
  return r;
}

inline constexpr uint64_t kVtdBase = 0xfed9'0000;

struct Msi {
  uint64_t addr;
  uint32_t data;
  uint32_t sid;
};

// Callbacks that record into the fixture (opaque).
struct Recorder {
  std::vector<std::string> logs;
  std::vector<Msi> msis;
  static void Log(void* opaque, int /*level*/, const char* msg) {
    static_cast<Recorder*>(opaque)->logs.emplace_back(msg);
  }
  static void OnMsi(void* opaque, uint64_t addr, uint32_t data, uint32_t sid) {
    static_cast<Recorder*>(opaque)->msis.push_back({addr, data, sid});
  }
  bool LogContains(const std::string& needle) const {
    for (const std::string& l : logs) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
};

class CapiTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRamSize = 16 << 20;

  CapiTest() {
    viommu_config cfg{};
    cfg.size = sizeof(cfg);
    viommu_callbacks cb{};
    cb.size = sizeof(cb);
    cb.log = &Recorder::Log;
    cb.msi = &Recorder::OnMsi;
    EXPECT_EQ(viommu_ctx_new(&cfg, &cb, &rec_, &ctx_), 0);
    void* p = mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    ram_ = static_cast<uint8_t*>(p);
  }
  ~CapiTest() override {
    viommu_ctx_free(ctx_);
    munmap(ram_, kRamSize);
  }

  // Guest RAM [0, kRamSize) at ram_.
  uint32_t AddRam(int32_t fd = -1, uint64_t fd_offset = 0) {
    viommu_region r{};
    r.size = sizeof(r);
    r.kind = VIOMMU_REGION_RAM;
    r.gpa = 0;
    r.len = kRamSize;
    r.hva = ram_;
    r.fd = fd;
    r.fd_offset = fd_offset;
    r.name = "ram";
    uint32_t id = 0;
    EXPECT_EQ(viommu_region_add(ctx_, &r, &id), 0);
    return id;
  }

  uint64_t Read64(uint64_t gpa) const {
    uint64_t v;
    std::memcpy(&v, ram_ + gpa, 8);
    return v;
  }
  void Write64(uint64_t gpa, uint64_t v) { std::memcpy(ram_ + gpa, &v, 8); }

  Recorder rec_;
  viommu_ctx* ctx_ = nullptr;
  uint8_t* ram_ = nullptr;
};

// A 3-level (39-bit) VT-d guest driver over the fixture's RAM.
class VtdGuest {
 public:
  static constexpr uint64_t kRoot = 0x10'0000;
  static constexpr uint64_t kContext = 0x10'1000;
  static constexpr uint64_t kTablesBase = 0x10'2000;
  static constexpr int kLevels = 3;

  VtdGuest(uint8_t* ram, viommu_ctx* ctx) : ram_(ram), ctx_(ctx) {
    top_ = NewTable();
    Mem64(kRoot, kContext | 1);  // bus 0
  }

  void SetContext(uint8_t devfn, uint16_t did) {
    Mem64(kContext + devfn * 16u, top_ | 1);
    Mem64(kContext + devfn * 16u + 8,
          uint64_t{kLevels - 2} | uint64_t{did} << 8);
  }
  // Maps the 4 KiB page at iova to gpa (perm 0 clears it).
  void Map(uint64_t iova, uint64_t gpa, uint32_t perm) {
    uint64_t table = top_;
    for (int level = kLevels; level > 1; --level) {
      uint64_t slot = table + Index(iova, level) * 8;
      uint64_t e = Peek64(slot);
      if ((e & 3) == 0) {
        e = NewTable() | 3;
        Mem64(slot, e);
      }
      table = e & ~uint64_t{0xfff};
    }
    Mem64(table + Index(iova, 1) * 8, perm == 0 ? 0 : (gpa | perm));
  }
  void Enable() {
    Reg64(vtd::Reg64::kRtaddr, kRoot);
    Reg32(vtd::Reg32::kGcmd, vtd::kGcmdSrtp);
    Reg32(vtd::Reg32::kGcmd, vtd::kGcmdTe);
  }
  // Register-based page-selective IOTLB invalidation of one 4 KiB page.
  void InvalidatePage(uint16_t did, uint64_t addr) {
    Reg64(vtd::Reg64::kIva, addr);
    Reg64(vtd::Reg64::kIotlb, vtd::kIotlbIvt | 3ull << vtd::kIotlbIirgShift |
                                  uint64_t{did} << vtd::kIotlbDidShift);
  }
  // Fault events unmasked, to `addr` with `data`.
  void SetFaultEvent(uint32_t addr, uint32_t data) {
    Reg32(vtd::Reg32::kFedata, data);
    Reg32(vtd::Reg32::kFeaddr, addr);
    Reg32(vtd::Reg32::kFectl, 0);
  }

  void Reg32(vtd::Reg32 r, uint32_t v) {
    uint64_t d = v;
    ASSERT_EQ(viommu_mmio_access(ctx_, kVtdBase + vtd::Offset(r), &d, 4, 1), 0);
  }
  void Reg64(vtd::Reg64 r, uint64_t v) {
    ASSERT_EQ(viommu_mmio_access(ctx_, kVtdBase + vtd::Offset(r), &v, 8, 1), 0);
  }
  uint32_t ReadReg32(vtd::Reg32 r) {
    uint64_t d = 0;
    EXPECT_EQ(viommu_mmio_access(ctx_, kVtdBase + vtd::Offset(r), &d, 4, 0), 0);
    return static_cast<uint32_t>(d);
  }

 private:
  static uint64_t Index(uint64_t iova, int level) {
    return (iova >> (12 + 9 * (level - 1))) & 511;
  }
  uint64_t NewTable() {
    uint64_t t = next_;
    next_ += 0x1000;
    for (int i = 0; i < 512; ++i) Mem64(t + i * 8u, 0);
    return t;
  }
  uint64_t Peek64(uint64_t gpa) {
    uint64_t v;
    std::memcpy(&v, ram_ + gpa, 8);
    return v;
  }
  void Mem64(uint64_t gpa, uint64_t v) { std::memcpy(ram_ + gpa, &v, 8); }

  uint8_t* ram_;
  viommu_ctx* ctx_;
  uint64_t next_ = kTablesBase;
  uint64_t top_ = 0;
};

}  // namespace viommu::capi::testing

#endif  // VIOMMU_TESTS_CAPI_CAPI_FIXTURE_H_
