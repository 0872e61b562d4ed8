// libFuzzer target: virtio-iommu-pci's request queue, driven as a guest
// driver does, on a q35 machine (system::Vm, as build/viommu builds it)
// with `-device virtio-iommu-pci,addr=03.0`, edu at 04.0, dma-testdev at
// 05.0 and `-device vfio-pci,host=0000:01:00.0,addr=06.0` over the model
// host (its type1 container listens to the endpoint's DMA root, as QEMU
// 7.2's does).
//
// Input: byte 0 picks boot-bypass (two machines, one per value). Then up
// to kMaxActions actions, each an opcode byte and operands (missing bytes
// read as zero):
//  * driver init (status walk, a feature subset of what is offered, queue
//    sizes 256/64/16, event buffers) — also after a device or system reset;
//  * requests queued into the current batch: ATTACH/DETACH/MAP/UNMAP/PROBE
//    and unknown types with fields biased to the interesting values, laid
//    out as one descriptor or split, in an indirect table, with the
//    readable part short or longer than the payload and writable parts of
//    4, 16, 515, 516 or 600 bytes;
//  * malformed chains (loop, next outside an indirect table, head out of
//    range, zero length, readable after writable, nested indirect, bad
//    indirect length, buffer outside RAM, readable or writable part under
//    4 bytes): the device must go NEEDS_RESET and answer nothing more;
//  * notify (the batch is answered synchronously in the write);
//  * config.bypass writes (read first, as QEMU's stale config copy needs);
//  * device reset (status 0) and system_reset, each followed by re-init;
//  * dma-testdev and edu DMA through the endpoints' views;
//  * re-registering a notifier with replay; posting event buffers.
//
// Oracles (abort(), so libFuzzer reports the input), after every batch:
//  * each request gets the used entry (head, length) and status a shadow
//    model in this file predicts: domains, endpoints, mappings, config
//    bypass, following VIRTIO 1.2 §5.13 and QEMU 7.2 with the deviations
//    docs/virtio-iommu.md documents (atomic UNMAP, DEVERR for a short PROBE
//    reply, DETACH forgets the endpoint); PROBE property bytes;
//  * per endpoint (00.0, 04.0, 05.0), the mappings a MAP/UNMAP notifier
//    on its IOMMU region recorded (MAP only where nothing is recorded,
//    UNMAP exactly as mapped) equal the shadow's mappings of its domain
//    (with R or W), merged into runs;
//  * teardown (system_reset, device reset, every endpoint detached)
//    leaves every recorder empty;
//  * the host container of 06.0 (vfio-pci) holds exactly what the shadow
//    says: while 06.0 is in a translated domain, each of the domain's
//    mappings with R or W whose target lies in RAM, as IOVA -> the RAM's
//    host address (read-only without W), outside the MSI window and the
//    container's invalid IOVA ranges, and never a page in the reserved
//    MSI window 0xfee00000-0xfeefffff; all RAM identity-mapped while 06.0
//    is bypassed; nothing while it is translated with no domain (or after
//    DETACH of everything with bypass off). A container page is never
//    anything else; a shadow mapping may be missing only when the
//    container counted an error in the batch that made it (as QEMU 7.2,
//    host map failures are not reported to the guest);
//  * DMA: a DMA the shadow says translates into RAM succeeds with the
//    bytes at the predicted address; one it says faults fails, and every
//    fault record on the event queue names the endpoint and the reason
//    and flags the shadow gives for its address.
// One machine per boot-bypass value per process, reset between inputs
// (machine_reuse.h); the replay test proves each corpus input's trace
// (statuses, used entries, DMA results, fault records, recorded
// mappings, device state, guest RAM) equal on a fresh machine and after
// every other input (fuzz_trace.h).
#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/iommu/virtio/virtio_iommu.h"
#include "viommu/hw/iommu/virtio/virtio_iommu_regs.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/hw/virtio/virtio_pci_function.h"
#include "viommu/hw/virtio/virtio_regs.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/iommu.h"
#include "viommu/memory/iommu_notifier_chains.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/system/vm.h"
#include "viommu/vfio/container.h"
#include "viommu/vfio/host/host_platform.h"

namespace viommu::fuzz::virtio_iommu_target {
namespace {

namespace vi = ::viommu::virtio_iommu;
namespace vio = ::viommu::hw::virtio;

constexpr int kMaxActions = 160;
constexpr size_t kMaxBatch = 8;

// PCI layout.
constexpr uint8_t kIommuDevfn = 0x18;         // 03.0
constexpr uint8_t kEduDevfn = 0x20;           // 04.0
constexpr uint8_t kTestDevfn = 0x28;          // 05.0
constexpr uint8_t kVfioDevfn = 0x30;          // 06.0, vfio-pci of 0000:01:00.0
constexpr uint64_t kVirtioBar = 0xfe00'0000;  // BAR4, 16 KiB
constexpr uint64_t kEduBar = 0xfe10'0000;     // 1 MiB
constexpr uint64_t kTestBar = 0xfe20'0000;    // 8 KiB
constexpr uint64_t kCommon = kVirtioBar + vio::kVirtioPciCommonOffset;
constexpr uint64_t kDevCfg = kVirtioBar + vio::kVirtioPciDeviceOffset;
constexpr uint64_t kNotify = kVirtioBar + vio::kVirtioPciNotifyOffset;

// Endpoints with a notifier, and the ones the DMA actions use.
constexpr std::array<uint16_t, 4> kWatched = {0x00, kEduDevfn, kTestDevfn,
                                              kVfioDevfn};

// Guest memory (16 MiB).
constexpr uint64_t kRamSize = 16 << 20;
constexpr uint64_t kReqDesc = 0x10000, kReqAvail = 0x11000, kReqUsed = 0x12000;
constexpr uint64_t kEvtDesc = 0x14000, kEvtAvail = 0x15000, kEvtUsed = 0x16000,
                   kEvtBufs = 0x18000;
constexpr uint16_t kEvtQueueSize = 16;
constexpr uint64_t kIndirect = 0x20000;     // + slot * 0x400
constexpr uint64_t kOutBufs = 0x30000;      // + slot * 0x400
constexpr uint64_t kInBufs = 0x40000;       // + slot * 0x800
constexpr uint64_t kDataFirst = 0x10'0000;  // DMA writes land only here
constexpr uint64_t kMsiFirst = vi::kMsiWindowFirst;
constexpr uint64_t kMsiLast = vi::kMsiWindowLast;

// dma-testdev and edu registers (edu's buffer is at 0x40000 of its DMA
// space only: not in its BAR).
constexpr uint64_t kTdIova = 0x08, kTdLen = 0x10, kTdOffset = 0x14,
                   kTdCmd = 0x18, kTdResult = 0x1c, kTdBuffer = 0x1000;
constexpr uint64_t kEduDmaSrc = 0x80, kEduDmaDst = 0x88, kEduDmaCnt = 0x90,
                   kEduDmaCmd = 0x98, kEduBuffer = 0x40000;

// VIRTIO_IOMMU_FUZZER_VERBOSE=1: print every request's answer (triage).
bool Verbose() {
  static const bool verbose =
      std::getenv("VIRTIO_IOMMU_FUZZER_VERBOSE") != nullptr;
  return verbose;
}

[[noreturn]] void Fail(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr,
               "virtio_iommu_fuzzer invariant: %s (0x%" PRIx64 ", 0x%" PRIx64
               ")\n",
               what, a, b);
  std::abort();
}

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return n_ == 0; }
  uint8_t U8() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  uint16_t U16() { return static_cast<uint16_t>(U8() | U8() << 8); }
  uint32_t U32() { return U16() | uint32_t{U16()} << 16; }
  uint64_t U64() { return U32() | uint64_t{U32()} << 32; }

 private:
  const uint8_t* p_;
  size_t n_;
};

// ---------------------------------------------------------------- shadow

struct ShadowMapping {
  uint64_t last = 0;
  uint64_t phys = 0;
  uint32_t flags = 0;
  // The host container counted an error while this mapping reached it: it
  // may be missing there (never wrong).
  bool excused = false;
};
struct ShadowDomain {
  bool bypass = false;
  std::map<uint64_t, ShadowMapping> mappings;  // by first IOVA
  std::vector<uint16_t> endpoints;
};

struct Translated {
  bool fault = false;
  uint8_t reason = 0;
  uint32_t flags = 0;
  uint64_t phys = 0;
};

// The device as the spec, QEMU 7.2 and docs/virtio-iommu.md say it behaves;
// written from those rules, not from the model's code.
class Shadow {
 public:
  explicit Shadow(bool boot_bypass) : boot_bypass_(boot_bypass) {
    bypass_ = boot_bypass;
  }
  void SetKnown(std::vector<uint16_t> known) { known_ = std::move(known); }
  // The passthrough endpoint and what its host IOMMU can map: the valid
  // IOVA ranges (empty: all) and the smallest page (0: any alignment).
  void SetHost(uint16_t sid, std::vector<Range> ranges, uint64_t min_page) {
    host_sid_ = sid;
    host_ranges_ = std::move(ranges);
    host_page_ = min_page;
  }
  // PROBE properties of `ep` (issue 13 part 5): the MSI window as MSI, then
  // for the passthrough endpoint every IOVA outside its host's valid
  // ranges as RESERVED, ascending, cut around the MSI window.
  std::vector<uint8_t> ProbeProperties(uint16_t ep) const {
    std::vector<uint8_t> out;
    auto put = [&](uint8_t subtype, uint64_t first, uint64_t last) {
      const uint8_t head[8] = {1, 0, 20, 0, subtype, 0, 0, 0};
      out.insert(out.end(), head, head + 8);
      for (uint64_t v : {first, last}) {
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> 8 * i));
      }
    };
    put(vi::kResvMemMsi, kMsiFirst, kMsiLast);
    if (ep != host_sid_ || host_ranges_.empty()) return out;
    auto hole = [&](uint64_t first, uint64_t last) {
      if (last < kMsiFirst || first > kMsiLast) return put(0, first, last);
      if (first < kMsiFirst) put(0, first, kMsiFirst - 1);
      if (last > kMsiLast) put(0, kMsiLast + 1, last);
    };
    // Walk the 64-bit space: what no valid range covers is a hole.
    uint64_t at = 0;
    for (const Range& r : host_ranges_) {
      if (r.first > at) hole(at, r.first - 1);
      if (r.last == ~uint64_t{0}) return out;
      at = r.last + 1;
    }
    hole(at, ~uint64_t{0});
    return out;
  }
  bool bypass() const { return bypass_; }
  void set_bypass(bool b) { bypass_ = b; }

  void SystemReset() {
    domains_.clear();
    endpoints_.clear();
    bypass_ = boot_bypass_;
  }
  void DeviceReset() {
    domains_.clear();
    endpoints_.clear();
  }

  // Status of one request whose readable part (its first `n` bytes, at
  // most 72) is `req`; `in_size` is the writable part's size. Sets
  // *used_len and *status_at.
  uint8_t Request(const uint8_t* req, size_t n, uint64_t in_size,
                  uint32_t* used_len, uint32_t* status_at) {
    *used_len = vi::kTailSize;
    *status_at = 0;
    switch (req[0]) {
      case vi::kReqAttach:
        return Attach(req, n);
      case vi::kReqDetach:
        return Detach(req, n);
      case vi::kReqMap:
        return Map(req, n);
      case vi::kReqUnmap:
        return Unmap(req, n);
      case vi::kReqProbe:
        // A reply buffer shorter than probe_size + 4: DEVERR, used 4
        // (QEMU 9.1; 7.2 aborts).
        if (in_size < vi::kProbeReplySize) return vi::kStatusDeverr;
        *used_len = vi::kProbeReplySize;
        *status_at = vi::kProbeSize;
        if (n < vi::kProbeReqSize) return vi::kStatusInval;
        return Known(Le32(req + 4)) ? vi::kStatusOk : vi::kStatusNoent;
      default:
        return vi::kStatusUnsupp;
    }
  }

  Translated Translate(uint16_t sid, uint64_t addr, bool write) const {
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end()) {
      if (bypass_) return {.phys = addr};
      return {true, vi::kFaultReasonUnknown, vi::kFaultFlagAddress, 0};
    }
    if (addr >= kMsiFirst && addr <= kMsiLast) return {.phys = addr};
    if (!ep->second.has_value()) {
      if (bypass_) return {.phys = addr};
      return {true, vi::kFaultReasonDomain, vi::kFaultFlagAddress, 0};
    }
    const ShadowDomain& d = domains_.at(*ep->second);
    if (d.bypass) return {.phys = addr};
    auto it = d.mappings.upper_bound(addr);
    if (it == d.mappings.begin() || std::prev(it)->second.last < addr) {
      return {true, vi::kFaultReasonMapping, vi::kFaultFlagAddress, 0};
    }
    --it;
    const uint32_t need = write ? vi::kMapFlagWrite : vi::kMapFlagRead;
    if (!(it->second.flags & need)) {
      return {true, vi::kFaultReasonMapping,
              vi::kFaultFlagAddress |
                  (write ? vi::kFaultFlagWrite : vi::kFaultFlagRead),
              0};
    }
    return {.phys = it->second.phys + (addr - it->first)};
  }

  // The mappings a notifier on `sid` must hold: those of its domain with
  // R or W (the MSI window included: QEMU 7.2 notifies MAPs over it).
  std::map<uint64_t, ShadowMapping> Expected(uint16_t sid) const {
    std::map<uint64_t, ShadowMapping> out;
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end() || !ep->second.has_value()) return out;
    const ShadowDomain& d = domains_.at(*ep->second);
    if (d.bypass) return out;
    for (const auto& [first, m] : d.mappings) {
      const uint32_t perm = m.flags & (vi::kMapFlagRead | vi::kMapFlagWrite);
      if (perm == 0) continue;
      out[first] = {m.last, m.phys, perm, m.excused};
    }
    return out;
  }

  void ExcuseAll(uint16_t sid) {
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end() || !ep->second.has_value()) return;
    for (auto& [first, m] : domains_.at(*ep->second).mappings) m.excused = true;
  }
  // Whether `sid`'s DMA root shows system memory (bypass) rather than the
  // IOMMU region.
  bool Bypassed(uint16_t sid) const {
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end() || !ep->second.has_value()) return bypass_;
    return domains_.at(*ep->second).bypass;
  }
  // The domain's mapping holding `iova`, if `sid` is in a translated one.
  const ShadowMapping* Lookup(uint16_t sid, uint64_t iova,
                              uint64_t* first) const {
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end() || !ep->second.has_value()) return nullptr;
    const ShadowDomain& d = domains_.at(*ep->second);
    auto it = d.mappings.upper_bound(iova);
    if (d.bypass || it == d.mappings.begin()) return nullptr;
    --it;
    if (it->second.last < iova) return nullptr;
    *first = it->first;
    return &it->second;
  }
  size_t domain_count() const { return domains_.size(); }

 private:
  static uint32_t Le32(const uint8_t* p) {
    return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24;
  }
  static uint64_t Le64(const uint8_t* p) {
    return Le32(p) | uint64_t{Le32(p + 4)} << 32;
  }
  bool Known(uint32_t ep) const {
    return ep <= 0xffff && std::find(known_.begin(), known_.end(),
                                     static_cast<uint16_t>(ep)) != known_.end();
  }
  void Leave(uint16_t sid) {
    auto ep = endpoints_.find(sid);
    if (ep == endpoints_.end() || !ep->second.has_value()) return;
    ShadowDomain& d = domains_.at(*ep->second);
    d.endpoints.erase(std::find(d.endpoints.begin(), d.endpoints.end(), sid));
    if (d.endpoints.empty()) domains_.erase(*ep->second);  // dies with it
    ep->second.reset();
  }
  uint8_t Attach(const uint8_t* r, size_t n) {
    if (n < vi::kAttachReqSize) return vi::kStatusInval;
    const uint32_t domain = Le32(r + 4), ep = Le32(r + 8), flags = Le32(r + 12);
    if (flags & ~vi::kAttachFlagBypass) return vi::kStatusInval;
    if (!Known(ep)) return vi::kStatusNoent;
    const uint16_t sid = static_cast<uint16_t>(ep);
    const bool bypass = flags & vi::kAttachFlagBypass;
    // QEMU 7.2: leave the current domain first (same one included), then
    // check the bypass flag; the endpoint stays known either way.
    Leave(sid);
    endpoints_[sid];
    auto it = domains_.find(domain);
    if (it != domains_.end() && it->second.bypass != bypass) {
      return vi::kStatusInval;
    }
    ShadowDomain& d = domains_[domain];
    if (it == domains_.end()) d.bypass = bypass;
    d.endpoints.push_back(sid);
    endpoints_[sid] = domain;
    return vi::kStatusOk;
  }
  uint8_t Detach(const uint8_t* r, size_t n) {
    if (n < vi::kDetachReqSize) return vi::kStatusInval;
    const uint32_t domain = Le32(r + 4), ep = Le32(r + 8);
    if (ep > 0xffff) return vi::kStatusNoent;
    auto it = endpoints_.find(static_cast<uint16_t>(ep));
    if (it == endpoints_.end()) return vi::kStatusNoent;
    if (it->second != std::optional<uint32_t>(domain)) return vi::kStatusInval;
    Leave(it->first);
    endpoints_.erase(it);  // QEMU 9.1: forgotten
    return vi::kStatusOk;
  }
  uint8_t Map(const uint8_t* r, size_t n) {
    if (n < vi::kMapReqSize) return vi::kStatusInval;
    const uint32_t domain = Le32(r + 4);
    const uint64_t first = Le64(r + 8), last = Le64(r + 16),
                   phys = Le64(r + 24);
    const uint32_t flags = Le32(r + 32);
    if (flags & ~vi::kMapFlagsKnown) return vi::kStatusInval;
    auto it = domains_.find(domain);
    if (it == domains_.end()) return vi::kStatusNoent;
    if (it->second.bypass) return vi::kStatusInval;
    if (last < first) return vi::kStatusOk;  // holds nothing (QEMU 7.2)
    for (const auto& [f, m] : it->second.mappings) {
      if (f <= last && m.last >= first) return vi::kStatusInval;
    }
    // Beyond QEMU: with the passthrough endpoint in the domain, a range
    // its host cannot map (outside one valid range, or not aligned to the
    // host's smallest page) is RANGE, and nothing changes.
    const auto& eps = it->second.endpoints;
    if (std::find(eps.begin(), eps.end(), host_sid_) != eps.end()) {
      const uint64_t m = host_page_ == 0 ? 0 : host_page_ - 1;
      if (((first | phys | (last + 1)) & m) != 0) return vi::kStatusRange;
      if (!host_ranges_.empty() &&
          std::none_of(host_ranges_.begin(), host_ranges_.end(),
                       [&](const Range& valid) {
                         return valid.first <= first && last <= valid.last;
                       })) {
        return vi::kStatusRange;
      }
    }
    it->second.mappings[first] = {last, phys, flags};
    return vi::kStatusOk;
  }
  uint8_t Unmap(const uint8_t* r, size_t n) {
    if (n < vi::kUnmapReqSize) return vi::kStatusInval;
    const uint32_t domain = Le32(r + 4);
    const uint64_t first = Le64(r + 8), last = Le64(r + 16);
    auto it = domains_.find(domain);
    if (it == domains_.end()) return vi::kStatusNoent;
    if (it->second.bypass) return vi::kStatusInval;
    if (last < first) return vi::kStatusOk;
    auto& maps = it->second.mappings;
    std::vector<uint64_t> gone;
    for (const auto& [f, m] : maps) {
      if (f > last || m.last < first) continue;
      if (f < first || m.last > last) return vi::kStatusRange;  // atomic
      gone.push_back(f);
    }
    for (uint64_t f : gone) maps.erase(f);
    return vi::kStatusOk;
  }

  const bool boot_bypass_;
  bool bypass_;
  std::vector<uint16_t> known_;
  uint16_t host_sid_ = 0xffff;  // none
  std::vector<Range> host_ranges_;
  uint64_t host_page_ = 0;
  std::map<uint32_t, ShadowDomain> domains_;
  std::map<uint16_t, std::optional<uint32_t>> endpoints_;
};

// ------------------------------------------------------------- recorder

// The mappings one endpoint's MAP/UNMAP notifier has heard of.
class Recorder final : public memory::IommuNotifier {
 public:
  struct Block {
    uint64_t last;
    uint64_t phys;
    uint32_t perm;
  };
  void Notify(const memory::IommuEvent& e) override {
    const uint64_t first = e.entry.iova;
    const uint64_t last = e.entry.iova + e.entry.addr_mask;
    if (e.type == memory::IommuEventType::kMap) {
      auto next = blocks_.upper_bound(last);
      if (next != blocks_.begin() && std::prev(next)->second.last >= first) {
        Fail("MAP event over a recorded mapping", first, last);
      }
      if (e.entry.perm == memory::kIommuNone) {
        Fail("MAP event without permission", first, last);
      }
      blocks_[first] = {last, e.entry.translated_addr, e.entry.perm};
    } else {
      auto it = blocks_.find(first);
      if (it == blocks_.end() || it->second.last != last) {
        Fail("UNMAP event not as mapped", first, last);
      }
      blocks_.erase(it);
    }
  }
  const std::map<uint64_t, Block>& blocks() const { return blocks_; }
  void Clear() { blocks_.clear(); }

 private:
  std::map<uint64_t, Block> blocks_;
};

struct Run {
  uint64_t first, last, phys;
  uint32_t perm;
  friend bool operator==(const Run&, const Run&) = default;
};

// Merges [first, last] -> phys pieces contiguous in IOVA and phys with the
// same permission, so block splits do not matter.
template <typename It, typename Get>
std::vector<Run> Merge(It begin, It end, Get get) {
  std::vector<Run> out;
  for (It i = begin; i != end; ++i) {
    Run r = get(*i);
    if (!out.empty()) {
      Run& p = out.back();
      if (p.last + 1 == r.first && p.perm == r.perm &&
          p.phys + (p.last - p.first) + 1 == r.phys) {
        p.last = r.last;
        continue;
      }
    }
    out.push_back(r);
  }
  return out;
}

// ------------------------------------------------------------- machine

class Machine {
 public:
  explicit Machine(bool boot_bypass) : boot_bypass_(boot_bypass) {
    system::VmConfig config;
    config.ram_size = kRamSize;
    config.devices.push_back(
        {.head = "virtio-iommu-pci",
         .props = {{"addr", "03.0"},
                   {"boot-bypass", boot_bypass ? "on" : "off"}}});
    config.devices.push_back(
        {.head = "edu",
         .props = {{"addr", "04.0"}, {"dma_mask", "0xffffffffffffffff"}}});
    config.devices.push_back(
        {.head = "dma-testdev", .props = {{"addr", "05.0"}}});
    config.devices.push_back(
        {.head = "vfio-pci",
         .props = {{"host", "0000:01:00.0"}, {"addr", "06.0"}}});
    auto vm = system::Vm::Create(config);
    if (!vm.ok()) {
      std::fprintf(stderr, "%s\n", vm.status().ToString().c_str());
      __builtin_trap();
    }
    vm_ = *std::move(vm);
    m_ = &vm_->machine();
    auto host = vfio::HostPciAddress::Parse("0000:01:00.0");
    if (!host.ok()) __builtin_trap();
    host_ = *host;
    if (container() == nullptr) Fail("vfio-pci has no container", 0, 0);
    memory::Translation t = m_->system_as().Translate(0, 1, false);
    if (t.mr == nullptr || t.mr->host() == nullptr) __builtin_trap();
    ram_hva_ = reinterpret_cast<uint64_t>(t.mr->host());
    iommu_ = dynamic_cast<vi::VirtioIommu*>(m_->viommu());
    if (iommu_ == nullptr) __builtin_trap();
    // Every function on bus 0 is an endpoint ATTACH and PROBE accept.
    m_->pci_bus().ForEachDevice(
        [&](hw::pci::PciDevice* dev) { known_.push_back(dev->devfn()); });
    for (uint16_t sid : known_) {
      if (!iommu_->EndpointBypassed(sid).has_value()) {
        Fail("a function on bus 0 is no endpoint", sid, 0);
      }
    }
    for (size_t i = 0; i < kWatched.size(); ++i) Register(i);
  }
  ~Machine() {
    for (auto& h : handles_) h.Reset();
  }

  vfio::VfioContainer* container() {
    return vm_->vfio().manager().ContainerOf(host_);
  }
  uint64_t ram_hva() const { return ram_hva_; }

  hw::Q35Machine& m() { return *m_; }
  vi::VirtioIommu& iommu() { return *iommu_; }
  bool boot_bypass() const { return boot_bypass_; }
  const std::vector<uint16_t>& known() const { return known_; }
  Recorder& recorder(size_t i) { return recorders_[i]; }
  vio::VirtioPciFunction* function() {
    return static_cast<vio::VirtioPciFunction*>(
        m_->pci_bus().Find(kIommuDevfn));
  }

  void Register(size_t i) {
    handles_[i].Reset();
    recorders_[i].Clear();
    memory::MemoryRegion* mr = iommu_->IommuRegion(kWatched[i]);
    if (mr == nullptr || mr->iommu() == nullptr) {
      Fail("a watched endpoint has no IOMMU region", kWatched[i], 0);
    }
    auto h = mr->iommu()->Register(&recorders_[i],
                                   {.flags = memory::kNotifyIotlbEvents});
    if (!h.ok()) Fail("MAP+UNMAP registration refused", kWatched[i], 0);
    handles_[i] = std::move(*h);
    if (!mr->iommu()->Replay(handles_[i]).ok()) {
      Fail("replay failed", kWatched[i], 0);
    }
  }

  void ResetForReuse() {
    fuzz::ResetForReuse(*m_);
    for (size_t i = 0; i < kWatched.size(); ++i) {
      if (!recorders_[i].blocks().empty()) {
        Fail("mappings recorded after system_reset", kWatched[i],
             recorders_[i].blocks().size());
      }
    }
  }

 private:
  const bool boot_bypass_;
  std::unique_ptr<system::Vm> vm_;
  hw::Q35Machine* m_ = nullptr;  // vm_'s
  vfio::HostPciAddress host_;
  uint64_t ram_hva_ = 0;
  vi::VirtioIommu* iommu_ = nullptr;  // the machine's
  std::vector<uint16_t> known_;
  std::array<Recorder, kWatched.size()> recorders_;
  std::array<memory::IommuNotifierHandle, kWatched.size()> handles_;
};

// ------------------------------------------------------------- program

// One queued request and what the shadow predicts for it.
struct Pending {
  uint16_t head = 0;
  bool malformed = false;
  uint64_t in_addr[2] = {0, 0};  // the writable segments
  uint32_t in_len[2] = {0, 0};
  std::vector<uint8_t> out;  // the readable bytes (at most 72 looked at)
  uint64_t in_size = 0;
};

class Program {
 public:
  Program(Machine* m, Input* in)
      : mach_(m),
        in_(*in),
        shadow_(m->boot_bypass()),
        tracing_(Mode().tracing) {
    shadow_.SetKnown(m->known());
    // The host facts as the container reads them (not as the device
    // holds them): its valid ranges and smallest page.
    const vfio::VfioContainer* c = m->container();
    const uint64_t pages = c->page_size_mask();
    shadow_.SetHost(kVfioDevfn, c->iova_ranges(), pages & (~pages + 1));
  }

  // PCI setup and the driver's init (reads its choices from the input).
  void Start() {
    SetupPci();
    Init();
  }
  void Step();
  void Finish();

 private:
  hw::Q35Machine& m() { return mach_->m(); }
  void Note(uint64_t v) {
    if (tracing_) Trace().Add64(v);
  }
  uint64_t Mmio(uint64_t addr, unsigned size) {
    uint64_t v = 0;
    (void)m().system_as().Read(addr, &v, size);
    return v;
  }
  void Mmio(uint64_t addr, uint64_t v, unsigned size) {
    (void)m().system_as().Write(addr, &v, size);
  }
  void Ram(uint64_t addr, const void* p, size_t n) {
    (void)m().system_as().Write(addr, p, n);
  }
  void RamRead(uint64_t addr, void* p, size_t n) {
    (void)m().system_as().Read(addr, p, n);
  }
  void Put16(uint64_t addr, uint16_t v) { Ram(addr, &v, 2); }
  uint16_t Get16(uint64_t addr) {
    uint16_t v = 0;
    RamRead(addr, &v, 2);
    return v;
  }
  uint32_t Get32(uint64_t addr) {
    uint32_t v = 0;
    RamRead(addr, &v, 4);
    return v;
  }
  void Desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
            uint16_t flags, uint16_t next) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    Ram(table + uint64_t{i} * 16, d, 16);
  }
  uint8_t Status() { return static_cast<uint8_t>(Mmio(kCommon + 0x14, 1)); }

  void SetupPci();
  void Init();
  void QueueRequest();
  void QueueMalformed();
  void Kick();
  void WriteBypass();
  void DeviceReset();
  void SystemReset();
  void TestdevDma();
  void EduDma();
  void PostEventBuffers(unsigned n);
  void CollectFaults(uint16_t sid, bool write);
  void CheckMappings();
  void CheckContainer();
  uint64_t ContainerErrors() {
    const vfio::ContainerStats& st = mach_->container()->stats();
    return st.errors + st.map_errors + st.unmap_errors + st.warnings;
  }
  uint64_t PickIova();
  void BuildRequest(std::vector<uint8_t>* out);
  // Descriptors for the next chain: `n` free slots, or nullopt when the
  // batch must be kicked first.
  bool Room(unsigned n) const {
    return batch_.size() < kMaxBatch && desc_used_ + n <= qsize_;
  }

  Machine* mach_;
  Input& in_;
  Shadow shadow_;
  const bool tracing_;
  bool ready_ = false;   // driver initialised (DRIVER_OK)
  bool broken_ = false;  // shadow: NEEDS_RESET, nothing processed
  bool bypass_config_ = false;
  uint16_t qsize_ = 256;
  uint16_t avail_idx_ = 0;
  uint16_t used_seen_ = 0;
  uint16_t desc_used_ = 0;  // descriptors taken by the current batch
  uint16_t evt_avail_ = 0;
  uint16_t evt_used_seen_ = 0;
  std::vector<Pending> batch_;
  uint64_t last_iova_ = 0x10'0000;  // biases IOVAs to the last mapping
  uint64_t last_size_ = 0x1000;
};

void Program::SetupPci() {
  // One topology update for the seven writes (the flat views are the
  // biggest cost of an input).
  memory::MemorySystem::Transaction txn(&m().memory());
  hw::pci::PciBus& bus = m().pci_bus();
  bus.ConfigWrite(kIommuDevfn, hw::pci::kCfgBar0 + 16,
                  static_cast<uint32_t>(kVirtioBar), 4);
  bus.ConfigWrite(kIommuDevfn, hw::pci::kCfgBar0 + 20, 0, 4);
  bus.ConfigWrite(kEduDevfn, hw::pci::kCfgBar0, kEduBar, 4);
  bus.ConfigWrite(kTestDevfn, hw::pci::kCfgBar0, kTestBar, 4);
  for (uint8_t devfn : {kIommuDevfn, kEduDevfn, kTestDevfn}) {
    bus.ConfigWrite(devfn, hw::pci::kCfgCommand,
                    hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2);
  }
}

// The driver's init: reset, ACK|DRIVER, features, FEATURES_OK, queues,
// DRIVER_OK, event buffers.
void Program::Init() {
  const uint8_t k = in_.U8();
  static constexpr uint16_t kSizes[4] = {256, 64, 16, 256};
  qsize_ = kSizes[k & 3];
  // Device bits: a subset of what is offered (k's high bits pick).
  const uint8_t dev = in_.U8();
  uint64_t features =
      (dev & vi::kOfferedFeatures) | uint64_t{1} << vio::kFeatureVersion1;
  if (k & 4) features |= uint64_t{1} << vio::kFeatureIndirectDesc;
  if (k & 8) features |= uint64_t{1} << vio::kFeatureEventIdx;
  if (k & 0x10) features |= uint64_t{1} << vio::kFeatureRingReset;
  bypass_config_ = features & (1u << vi::kFeatureBypassConfig);

  Mmio(kCommon + 0x14, 0, 1);  // reset
  shadow_.DeviceReset();
  broken_ = false;
  Mmio(kCommon + 0x14, vio::kStatusAcknowledge, 1);
  Mmio(kCommon + 0x14, vio::kStatusAcknowledge | vio::kStatusDriver, 1);
  Mmio(kCommon + 0x08, 0, 4);
  Mmio(kCommon + 0x0c, static_cast<uint32_t>(features), 4);
  Mmio(kCommon + 0x08, 1, 4);
  Mmio(kCommon + 0x0c, features >> 32, 4);
  const uint8_t fok =
      vio::kStatusAcknowledge | vio::kStatusDriver | vio::kStatusFeaturesOk;
  Mmio(kCommon + 0x14, fok, 1);
  if (Status() != fok) {
    Fail("FEATURES_OK refused for offered features", features, Status());
  }
  // Rings, zeroed: a previous init's entries must not look available.
  static const uint8_t zero[0x1000] = {};
  for (uint64_t a : {kReqAvail, kReqUsed, kEvtAvail, kEvtUsed}) {
    Ram(a, zero, sizeof zero);
  }
  const struct {
    uint16_t index, size;
    uint64_t desc, avail, used;
  } queues[2] = {{0, qsize_, kReqDesc, kReqAvail, kReqUsed},
                 {1, kEvtQueueSize, kEvtDesc, kEvtAvail, kEvtUsed}};
  for (const auto& q : queues) {
    Mmio(kCommon + 0x16, q.index, 2);
    Mmio(kCommon + 0x18, q.size, 2);
    Mmio(kCommon + 0x20, q.desc, 4);
    Mmio(kCommon + 0x24, 0, 4);
    Mmio(kCommon + 0x28, q.avail, 4);
    Mmio(kCommon + 0x2c, 0, 4);
    Mmio(kCommon + 0x30, q.used, 4);
    Mmio(kCommon + 0x34, 0, 4);
    Mmio(kCommon + 0x1c, 1, 2);
  }
  Mmio(kCommon + 0x14, fok | vio::kStatusDriverOk, 1);
  avail_idx_ = used_seen_ = desc_used_ = 0;
  evt_avail_ = evt_used_seen_ = 0;
  batch_.clear();
  ready_ = true;
  PostEventBuffers((k >> 5) & 7);
  Note(features);
}

void Program::PostEventBuffers(unsigned n) {
  if (!ready_) return;
  for (unsigned i = 0; i < n; ++i) {
    if (static_cast<uint16_t>(evt_avail_ - evt_used_seen_) >= kEvtQueueSize) {
      return;  // every buffer is out
    }
    const uint16_t d = evt_avail_ % kEvtQueueSize;
    Desc(kEvtDesc, d, kEvtBufs + d * 32u, vi::kFaultSize, vio::kDescFlagWrite,
         0);
    Put16(kEvtAvail + 4 + 2u * d, d);
    ++evt_avail_;
    Put16(kEvtAvail + 2, evt_avail_);
  }
  Mmio(kNotify + 4, 0, 2);  // eventq: nothing to do, must not hurt
}

uint64_t Program::PickIova() {
  const uint8_t k = in_.U8();
  switch (k & 7) {
    case 0:
    case 1:
      return kDataFirst + uint64_t{in_.U8()} * 0x1000;
    case 2:
      return last_iova_;
    case 3:
      return last_iova_ + last_size_;
    case 4:
      return kMsiFirst - 0x2000 + uint64_t{in_.U8()} * 0x1000;
    case 5:
      return uint64_t{in_.U16()} << 12;
    case 6:
      return ~uint64_t{0} - uint64_t{in_.U8()} * 0x1000 - 0xfff;
    default:
      return in_.U64();
  }
}

void Program::BuildRequest(std::vector<uint8_t>* out) {
  const uint8_t k = in_.U8();
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
      out->push_back(static_cast<uint8_t>(v >> 8 * i));
  };
  auto domain = [&]() -> uint32_t {
    const uint8_t d = in_.U8();
    if (d < 0xf0) return d & 3;
    if (d < 0xf8) return 0xffffffff;
    return in_.U32();
  };
  auto endpoint = [&]() -> uint32_t {
    const uint8_t e = in_.U8();
    switch (e & 7) {
      case 0:
      case 1:
        return kEduDevfn;
      case 2:
        return e & 8 ? kVfioDevfn : kTestDevfn;
      case 3:
        return e & 8 ? 0x00 : kIommuDevfn;
      case 4:
        return mach_->known()[(e >> 3) % mach_->known().size()];
      case 5:
        return 0x10000 | kEduDevfn;
      case 6:
        return in_.U16();
      default:
        return in_.U32();
    }
  };
  // Types: ATTACH/DETACH/MAP/UNMAP/PROBE, MAP and ATTACH twice as likely.
  static constexpr uint8_t kTypes[8] = {
      vi::kReqAttach, vi::kReqAttach, vi::kReqDetach, vi::kReqMap,
      vi::kReqMap,    vi::kReqUnmap,  vi::kReqProbe,  0};
  uint8_t type = kTypes[k & 7];
  if (type == 0) type = in_.U8();  // unknown (or any) type
  put(type, 1);
  put(k & 0x80 ? in_.U8() : 0, 3);  // head reserved bytes
  switch (type) {
    case vi::kReqAttach: {
      put(domain(), 4);
      put(endpoint(), 4);
      const uint8_t f = in_.U8();
      put(f < 0xe0 ? f & 1 : f, 4);
      put(k & 0x40 ? in_.U32() : 0, 4);
      break;
    }
    case vi::kReqDetach:
      put(domain(), 4);
      put(endpoint(), 4);
      put(0, 8);
      break;
    case vi::kReqMap:
    case vi::kReqUnmap: {
      put(domain(), 4);
      const uint64_t first = PickIova();
      const uint8_t s = in_.U8();
      uint64_t size;
      switch (s & 7) {
        case 0:
        case 1:
        case 2:
          size = static_cast<uint64_t>((s >> 3) + 1) * 0x1000;
          break;
        case 3:
          size = 0x20'0000;
          break;
        case 4:
          size = in_.U16() + 1;  // unaligned
          break;
        case 5:
          size = 0;  // inverted (last = first - 1)
          break;
        case 6:
          size = ~first + 1;  // to the top
          break;
        default:
          size = in_.U64();
          break;
      }
      uint64_t phys = 0;
      if (type == vi::kReqMap) {
        const uint8_t p = in_.U8();
        phys = kDataFirst + static_cast<uint64_t>(p & 0x7f) * 0x1000;
        if (p & 0x80) phys = in_.U64();
      }
      last_iova_ = first;
      last_size_ = size;
      put(first, 8);
      put(first + size - 1, 8);
      if (type == vi::kReqMap) {
        put(phys, 8);
        const uint8_t f = in_.U8();
        static constexpr uint32_t kFlags[8] = {3, 3, 1, 2, 0, 4, 7, 8};
        put(f < 0xf8 ? kFlags[f & 7] : in_.U32(), 4);
      } else {
        put(0, 4);
      }
      break;
    }
    case vi::kReqProbe:
      put(endpoint(), 4);
      out->resize(out->size() + 64, 0);
      break;
    default: {
      const uint8_t n = in_.U8() & 0x3f;
      for (uint8_t i = 0; i < n; ++i) put(in_.U8(), 1);
      break;
    }
  }
  // The readable part: exact, short or longer.
  const uint8_t len = in_.U8();
  if (len >= 0xe0) {
    out->resize(
        std::max<size_t>(4, out->size() - 1 - (len & 0x1f) % out->size()));
  } else if (len >= 0xc0) {
    out->resize(out->size() + (len & 0x1f) + 1, 0);
  }
}

void Program::QueueRequest() {
  if (!ready_) return;
  const uint8_t shape = in_.U8();
  const bool indirect = shape & 1;
  const bool split_out = shape & 2;
  const bool split_in = shape & 4;
  if (!Room(indirect ? 1 : 4)) Kick();
  Pending p;
  BuildRequest(&p.out);
  static constexpr uint32_t kIn[8] = {4, 4, 4, 16, 516, 516, 600, 515};
  uint32_t in_size = kIn[(shape >> 3) & 7];
  if (p.out[0] == vi::kReqProbe && !(shape & 0x80)) in_size = 516;
  p.in_size = in_size;
  const size_t slot = batch_.size();
  const uint64_t out_addr = kOutBufs + slot * 0x400;
  const uint64_t in_addr = kInBufs + slot * 0x800;
  Ram(out_addr, p.out.data(), p.out.size());
  static const uint8_t poison[0x800] = {};
  Ram(in_addr, poison, in_size);
  // Segments.
  struct Seg {
    uint64_t addr;
    uint32_t len;
    bool write;
  };
  std::vector<Seg> segs;
  const uint32_t out_len = static_cast<uint32_t>(p.out.size());
  if (split_out && out_len > 1) {
    const uint32_t cut = 1 + (shape >> 6) % (out_len - 1);
    segs.push_back({out_addr, cut, false});
    segs.push_back({out_addr + cut, out_len - cut, false});
  } else {
    segs.push_back({out_addr, out_len, false});
  }
  if (split_in && in_size > 1) {
    const uint32_t cut = in_size > 4 ? 2 : 1;
    segs.push_back({in_addr, cut, true});
    segs.push_back({in_addr + cut, in_size - cut, true});
    p.in_addr[0] = in_addr;
    p.in_len[0] = cut;
    p.in_addr[1] = in_addr + cut;
    p.in_len[1] = in_size - cut;
  } else {
    segs.push_back({in_addr, in_size, true});
    p.in_addr[0] = in_addr;
    p.in_len[0] = in_size;
  }
  if (indirect) {
    const uint64_t table = kIndirect + slot * 0x400;
    for (size_t i = 0; i < segs.size(); ++i) {
      const bool more = i + 1 < segs.size();
      Desc(table, static_cast<uint16_t>(i), segs[i].addr, segs[i].len,
           (segs[i].write ? vio::kDescFlagWrite : 0) |
               (more ? vio::kDescFlagNext : 0),
           static_cast<uint16_t>(i + 1));
    }
    p.head = desc_used_;
    Desc(kReqDesc, desc_used_++, table, static_cast<uint32_t>(segs.size() * 16),
         vio::kDescFlagIndirect, 0);
  } else {
    p.head = desc_used_;
    for (size_t i = 0; i < segs.size(); ++i) {
      const bool more = i + 1 < segs.size();
      const uint16_t d = desc_used_++;
      Desc(kReqDesc, d, segs[i].addr, segs[i].len,
           (segs[i].write ? vio::kDescFlagWrite : 0) |
               (more ? vio::kDescFlagNext : 0),
           static_cast<uint16_t>(d + 1));
    }
  }
  Put16(kReqAvail + 4 + 2u * (avail_idx_ % qsize_), p.head);
  ++avail_idx_;
  Put16(kReqAvail + 2, avail_idx_);
  batch_.push_back(std::move(p));
  if (batch_.size() == kMaxBatch) Kick();
}

// A chain Pop or the request handler must reject: the device needs a
// reset and answers nothing more.
void Program::QueueMalformed() {
  if (!ready_) return;
  if (!Room(4)) Kick();
  const uint8_t k = in_.U8();
  const size_t slot = batch_.size();
  const uint64_t out_addr = kOutBufs + slot * 0x400;
  const uint64_t in_addr = kInBufs + slot * 0x800;
  const uint64_t table = kIndirect + slot * 0x400;
  const uint16_t h = desc_used_;
  uint16_t head = h;
  const uint16_t w = vio::kDescFlagWrite, nx = vio::kDescFlagNext;
  switch (k % 10) {
    case 0:  // loop: h -> h+1 -> h
      Desc(kReqDesc, h, out_addr, 20, nx, h + 1);
      Desc(kReqDesc, h + 1, in_addr, 4, w | nx, h);
      desc_used_ += 2;
      break;
    case 1:  // oversize: the indirect table's last entry goes on
      for (uint16_t i = 0; i < 8; ++i) {
        Desc(table, i, i < 4 ? out_addr : in_addr, 4,
             static_cast<uint16_t>((i < 4 ? 0 : w) | nx), i + 1);
      }
      Desc(kReqDesc, h, table, 8 * 16, vio::kDescFlagIndirect, 0);
      desc_used_ += 1;
      break;
    case 2:  // head out of range
      head = static_cast<uint16_t>(qsize_ + (k >> 4));
      break;
    case 3:  // zero-length buffer
      Desc(kReqDesc, h, out_addr, 0, nx, h + 1);
      Desc(kReqDesc, h + 1, in_addr, 4, w, 0);
      desc_used_ += 2;
      break;
    case 4:  // readable after writable
      Desc(kReqDesc, h, in_addr, 4, w | nx, h + 1);
      Desc(kReqDesc, h + 1, out_addr, 20, 0, 0);
      desc_used_ += 2;
      break;
    case 5:  // indirect inside indirect
      Desc(table, 0, table + 0x200, 32, vio::kDescFlagIndirect, 0);
      Desc(kReqDesc, h, table, 16, vio::kDescFlagIndirect, 0);
      desc_used_ += 1;
      break;
    case 6:  // indirect table length 0 or not a multiple of 16
      Desc(kReqDesc, h, table, (k & 0x10) ? 0 : 24, vio::kDescFlagIndirect, 0);
      desc_used_ += 1;
      break;
    case 7:  // a buffer outside RAM and every MMIO region
      Desc(kReqDesc, h, uint64_t{1} << 40, 20, nx, h + 1);
      Desc(kReqDesc, h + 1, in_addr, 4, w, 0);
      desc_used_ += 2;
      break;
    case 8:  // readable part under 4 bytes (or none)
      if (k & 0x10) {
        Desc(kReqDesc, h, in_addr, 4, w, 0);
        desc_used_ += 1;
      } else {
        Desc(kReqDesc, h, out_addr, 1 + (k >> 6) % 3, nx, h + 1);
        Desc(kReqDesc, h + 1, in_addr, 4, w, 0);
        desc_used_ += 2;
      }
      break;
    default:  // writable part under 4 bytes (or none)
      Ram(out_addr, "\x01\0\0\0", 4);
      if (k & 0x10) {
        Desc(kReqDesc, h, out_addr, 20, 0, 0);
        desc_used_ += 1;
      } else {
        Desc(kReqDesc, h, out_addr, 20, nx, h + 1);
        Desc(kReqDesc, h + 1, in_addr, 1 + (k >> 6) % 3, w, 0);
        desc_used_ += 2;
      }
      break;
  }
  Pending p;
  p.head = head;
  p.malformed = true;
  Put16(kReqAvail + 4 + 2u * (avail_idx_ % qsize_), head);
  ++avail_idx_;
  Put16(kReqAvail + 2, avail_idx_);
  batch_.push_back(std::move(p));
}

// Notify, then check every answer against the shadow, and the notifiers.
void Program::Kick() {
  if (!ready_) return;
  const uint64_t errors = ContainerErrors();
  Mmio(kNotify, 0, 2);
  struct Want {
    uint16_t head;
    uint32_t used_len;
    uint32_t status_at;
    uint8_t status;
    const Pending* p;
  };
  std::vector<Want> want;
  for (const Pending& p : batch_) {
    if (broken_) break;
    if (p.malformed) {
      broken_ = true;
      break;
    }
    uint8_t req[vi::kProbeReqSize] = {};
    const size_t n = std::min<size_t>(p.out.size(), vi::kProbeReqSize);
    std::memcpy(req, p.out.data(), n);
    Want w{p.head, 0, 0, 0, &p};
    w.status = shadow_.Request(req, n, p.in_size, &w.used_len, &w.status_at);
    want.push_back(w);
  }
  const uint16_t used = Get16(kReqUsed + 2);
  Note(used);
  if (static_cast<uint16_t>(used - used_seen_) != want.size()) {
    Fail("used entries other than predicted",
         static_cast<uint16_t>(used - used_seen_), want.size());
  }
  for (const Want& w : want) {
    const uint64_t e = kReqUsed + 4 + 8u * (used_seen_ % qsize_);
    ++used_seen_;
    const uint32_t id = Get32(e), len = Get32(e + 4);
    if (id != w.head) Fail("used id is not the chain's head", id, w.head);
    if (len != w.used_len) Fail("used length", len, w.used_len);
    // The reply, gathered from the writable segments.
    std::vector<uint8_t> reply(w.p->in_size);
    RamRead(w.p->in_addr[0], reply.data(), w.p->in_len[0]);
    if (w.p->in_len[1] != 0) {
      RamRead(w.p->in_addr[1], reply.data() + w.p->in_len[0], w.p->in_len[1]);
    }
    const uint8_t got = reply[w.status_at];
    Note(got);
    if (Verbose()) {
      std::fprintf(stderr,
                   "virtio_iommu_fuzzer: type %u (%zu bytes, in %" PRIu64
                   ") -> status %u used %u\n",
                   w.p->out[0], w.p->out.size(), w.p->in_size, got, len);
    }
    if (got != w.status) {
      std::fprintf(stderr,
                   "request type %u, %zu readable bytes, in %" PRIu64 "\n",
                   w.p->out[0], w.p->out.size(), w.p->in_size);
      Fail("request status", got, w.status);
    }
    if (w.p->out[0] == vi::kReqProbe && w.used_len == vi::kProbeReplySize) {
      // Properties: one RESV_MEM MSI for every known endpoint, the host's
      // holes as RESERVED for the passthrough one, zeros after.
      uint8_t props[vi::kProbeSize] = {};
      if (w.status == vi::kStatusOk) {
        uint8_t req[vi::kProbeReqSize] = {};
        std::memcpy(req, w.p->out.data(),
                    std::min<size_t>(w.p->out.size(), sizeof req));
        const uint32_t ep = req[4] | req[5] << 8 | req[6] << 16 |
                            uint32_t{req[7]} << 24;
        const std::vector<uint8_t> expected =
            shadow_.ProbeProperties(static_cast<uint16_t>(ep));
        if (expected.size() > sizeof props) Fail("PROBE model overflow", ep, 0);
        std::memcpy(props, expected.data(), expected.size());
      }
      if (std::memcmp(props, reply.data(), sizeof props) != 0) {
        Fail("PROBE properties", w.status, 0);
      }
    }
  }
  const uint8_t status = Status();
  Note(status);
  if (static_cast<bool>(status & vio::kStatusNeedsReset) != broken_) {
    Fail("NEEDS_RESET other than predicted", status, broken_);
  }
  batch_.clear();
  desc_used_ = 0;
  if (ContainerErrors() != errors) shadow_.ExcuseAll(kVfioDevfn);
  CheckMappings();
}

void Program::CheckMappings() {
  for (size_t i = 0; i < kWatched.size(); ++i) {
    const auto& blocks = mach_->recorder(i).blocks();
    const std::vector<Run> got =
        Merge(blocks.begin(), blocks.end(), [](const auto& kv) {
          return Run{kv.first, kv.second.last, kv.second.phys, kv.second.perm};
        });
    const auto expected = shadow_.Expected(kWatched[i]);
    const std::vector<Run> want =
        Merge(expected.begin(), expected.end(), [](const auto& kv) {
          return Run{kv.first, kv.second.last, kv.second.phys, kv.second.flags};
        });
    if (got != want) {
      for (const Run& r : got)
        std::fprintf(stderr,
                     "  recorded 0x%" PRIx64 "-0x%" PRIx64 " -> 0x%" PRIx64
                     " perm %u\n",
                     r.first, r.last, r.phys, r.perm);
      for (const Run& r : want)
        std::fprintf(stderr,
                     "  shadow   0x%" PRIx64 "-0x%" PRIx64 " -> 0x%" PRIx64
                     " perm %u\n",
                     r.first, r.last, r.phys, r.perm);
      Fail("notifier mappings differ from the shadow's", kWatched[i],
           got.size());
    }
    // A MAP over the MSI window is accepted and notified (QEMU 7.2; the
    // window stays identity for translation): the notifier holds it as
    // the shadow does; the host container must not (CheckContainer).
    for (const Run& r : got) {
      Note(r.first);
      Note(r.last);
      Note(r.phys);
      Note(r.perm);
    }
  }
  CheckContainer();
}

void Program::CheckContainer() {
  vfio::VfioContainer* c = mach_->container();
  if (c == nullptr) Fail("vfio-pci lost its container", 0, 0);
  const uint64_t ram = mach_->ram_hva();
  const auto& maps = c->mappings();
  const bool bypassed = shadow_.Bypassed(kVfioDevfn);
  Note(maps.size());
  if (Verbose()) {
    std::fprintf(stderr, "virtio_iommu_fuzzer: container %zu mappings%s\n",
                 maps.size(), bypassed ? " (bypassed)" : "");
  }
  for (const auto& [iova, dm] : maps) {
    const uint64_t last = iova + dm.size - 1;
    Note(iova);
    Note(dm.size);
    Note(dm.hva - ram);
    Note(dm.readonly);
    if (iova <= kMsiLast && last >= kMsiFirst) {
      Fail("host mapping in the MSI window", iova, last);
    }
    if (bypassed) {
      if (dm.hva != ram + iova || last >= kRamSize || dm.readonly) {
        Fail("bypassed, a host mapping other than RAM identity", iova,
             dm.hva - ram);
      }
      continue;
    }
    uint64_t first = 0;
    const ShadowMapping* sm = shadow_.Lookup(kVfioDevfn, iova, &first);
    if (sm == nullptr || sm->last < last) {
      Fail("a host mapping the shadow does not hold", iova, last);
    }
    const uint32_t perm = sm->flags & (vi::kMapFlagRead | vi::kMapFlagWrite);
    if (perm == 0) Fail("a host mapping of a mapping without R/W", iova, 0);
    if (dm.hva != ram + sm->phys + (iova - first)) {
      Fail("a host mapping to another address", iova, dm.hva - ram);
    }
    if (dm.readonly != !(perm & vi::kMapFlagWrite)) {
      Fail("a host mapping's permission", iova, perm);
    }
  }
  if (bypassed) {
    // All of RAM: at least the data region is there.
    auto it = maps.upper_bound(kDataFirst);
    if (it == maps.begin() ||
        std::prev(it)->first + std::prev(it)->second.size <= kDataFirst) {
      Fail("bypassed, RAM not mapped in the host", maps.size(), 0);
    }
    return;
  }
  // Every mapping the host can take is there: page-aligned, into RAM
  // above 1 MiB, clear of the MSI window, inside the valid IOVA ranges.
  const std::vector<Range>& ranges = c->iova_ranges();
  for (const auto& [first, m] : shadow_.Expected(kVfioDevfn)) {
    const uint64_t size = m.last - first + 1;
    if (m.excused || ((first | size | m.phys) & 0xfff) != 0 || size == 0 ||
        m.phys < kDataFirst || m.phys >= kRamSize || size > kRamSize - m.phys ||
        (first <= kMsiLast && m.last >= kMsiFirst)) {
      continue;
    }
    const uint64_t lo = first, hi = m.last;
    if (!ranges.empty() &&
        std::none_of(ranges.begin(), ranges.end(), [&](const Range& r) {
          return r.first <= lo && hi <= r.last;
        })) {
      continue;
    }
    uint64_t covered = 0;
    for (auto it = maps.lower_bound(first);
         it != maps.end() && it->first <= m.last; ++it) {
      covered += it->second.size;
    }
    if (covered != size) {
      Fail("a shadow mapping missing from the host container", first, covered);
    }
  }
}

void Program::WriteBypass() {
  if (!ready_) return;
  Kick();
  const uint8_t k = in_.U8();
  const uint8_t v = k & 0x80 ? k : k & 1;
  (void)Mmio(kDevCfg + 36, 1);  // refresh the function's config copy
  Mmio(kDevCfg + 36, v, 1);
  const uint8_t cur = shadow_.bypass() ? 1 : 0;
  if (v != cur) {
    if (!bypass_config_ || v > 1) {
      broken_ = true;  // DeviceError: NEEDS_RESET
    } else {
      shadow_.set_bypass(v == 1);
    }
  }
  const uint64_t got = Mmio(kDevCfg + 36, 1);
  Note(got);
  if (got != (shadow_.bypass() ? 1u : 0u)) {
    Fail("config.bypass", got, shadow_.bypass());
  }
  const uint8_t status = Status();
  if (static_cast<bool>(status & vio::kStatusNeedsReset) != broken_) {
    Fail("NEEDS_RESET after a bypass write", status, v);
  }
  // Views follow the bypass: the mappings are unchanged.
  CheckMappings();
}

void Program::DeviceReset() {
  if (ready_) Kick();
  Mmio(kCommon + 0x14, 0, 1);
  shadow_.DeviceReset();
  broken_ = false;
  ready_ = false;
  CheckMappings();  // every domain gone: nothing recorded
  for (size_t i = 0; i < kWatched.size(); ++i) {
    if (!mach_->recorder(i).blocks().empty()) {
      Fail("mappings recorded after device reset", kWatched[i], 0);
    }
  }
  Init();
}

void Program::SystemReset() {
  if (ready_) Kick();
  m().Reset();
  shadow_.SystemReset();
  broken_ = false;
  ready_ = false;
  for (size_t i = 0; i < kWatched.size(); ++i) {
    if (!mach_->recorder(i).blocks().empty()) {
      Fail("mappings recorded after system_reset", kWatched[i], 0);
    }
  }
  const uint8_t status = Status();  // BARs are gone: reads nothing
  Note(status);
  SetupPci();
  if (Status() != 0) Fail("device status after system_reset", Status(), 0);
  const uint64_t bypass = Mmio(kDevCfg + 36, 1);
  if (bypass != (mach_->boot_bypass() ? 1u : 0u)) {
    Fail("config.bypass after system_reset is not boot-bypass", bypass, 0);
  }
  Init();
}

// Reads the fault records posted since the last look; each must be one
// the shadow gives for its address.
void Program::CollectFaults(uint16_t sid, bool write) {
  const uint16_t used = Get16(kEvtUsed + 2);
  while (evt_used_seen_ != used) {
    const uint64_t e = kEvtUsed + 4 + 8u * (evt_used_seen_ % kEvtQueueSize);
    ++evt_used_seen_;
    const uint32_t id = Get32(e), len = Get32(e + 4);
    if (id >= kEvtQueueSize || len != vi::kFaultSize) {
      Fail("event used entry", id, len);
    }
    uint8_t r[vi::kFaultSize];
    RamRead(kEvtBufs + id * 32u, r, sizeof r);
    if (tracing_) Trace().Add(r, sizeof r);
    uint32_t flags, ep;
    uint64_t addr;
    std::memcpy(&flags, r + 4, 4);
    std::memcpy(&ep, r + 8, 4);
    std::memcpy(&addr, r + 16, 8);
    if (ep != sid) Fail("fault record of another endpoint", ep, sid);
    const Translated t = shadow_.Translate(sid, addr, write);
    if (!t.fault || t.reason != r[0] || t.flags != flags) {
      std::fprintf(stderr, "record reason %u flags 0x%x, shadow %d/%u/0x%x\n",
                   r[0], flags, t.fault, t.reason, t.flags);
      Fail("fault record the shadow does not give", addr, r[0]);
    }
  }
}

void Program::TestdevDma() {
  const uint8_t k = in_.U8();
  const uint64_t iova = PickIova() + (k & 0x10 ? in_.U8() : 0);
  const uint32_t len = 1 + (in_.U8() & 0x3f);
  bool write = k & 1;
  const uint16_t sid = kTestDevfn;
  // Predict byte by byte.
  bool any_fault = false, all_ram = true;
  for (uint32_t i = 0; i < len; ++i) {
    const Translated t = shadow_.Translate(sid, iova + i, write);
    if (t.fault) {
      any_fault = true;
    } else if (t.phys >= kRamSize || t.phys < kDataFirst ||
               iova + i < iova) {
      all_ram = false;
    }
  }
  if (write && !all_ram) write = false;  // never scribble outside data
  Mmio(kTestBar + kTdIova, iova, 8);
  Mmio(kTestBar + kTdLen, len, 4);
  Mmio(kTestBar + kTdOffset, 0, 4);
  if (write) {
    for (uint32_t i = 0; i < len; i += 8) {
      Mmio(kTestBar + kTdBuffer + i,
           0x1111'1111'1111'1111ull * (k >> 4 | 1) + i, 8);
    }
  }
  Mmio(kTestBar + kTdCmd, write ? 2 : 1, 4);
  const uint64_t result = Mmio(kTestBar + kTdResult, 4);
  Note(result);
  if (any_fault && result == 0) Fail("a faulting DMA succeeded", iova, len);
  if (!any_fault && all_ram) {
    if (result != 0) Fail("a mapped DMA failed", iova, result);
    for (uint32_t i = 0; i < len; ++i) {
      const Translated t = shadow_.Translate(sid, iova + i, write);
      uint8_t ram = 0;
      RamRead(t.phys, &ram, 1);
      const uint8_t dev =
          static_cast<uint8_t>(Mmio(kTestBar + kTdBuffer + i, 1));
      if (ram != dev)
        Fail("DMA bytes differ from the predicted address", iova + i, t.phys);
    }
  }
  if (ready_ && !broken_) CollectFaults(sid, write);
}

// edu reads `len` bytes at `iova` into its buffer (not visible through its
// BAR), then, when the shadow says a second IOVA translates writably into
// the data region, writes them back there: the bytes must be those at the
// predicted source.
void Program::EduDma() {
  const uint8_t k = in_.U8();
  const uint64_t iova = PickIova();
  const uint64_t iova2 = PickIova();
  const uint32_t len = 8u << (k & 7);  // 8 .. 1024
  bool any_fault = false, all_ram = true, back = true;
  for (uint32_t i = 0; i < len; ++i) {
    const Translated t = shadow_.Translate(kEduDevfn, iova + i, false);
    if (t.fault) {
      any_fault = true;
    } else if (t.phys >= kRamSize || iova + i < iova) {
      all_ram = false;
    }
    const Translated w = shadow_.Translate(kEduDevfn, iova2 + i, true);
    if (w.fault || w.phys < kDataFirst || w.phys >= kRamSize ||
        iova2 + i < iova2) {
      back = false;
    }
  }
  auto run = [&](uint64_t src, uint64_t dst, bool to_ram) {
    Mmio(kEduBar + kEduDmaSrc, src, 8);
    Mmio(kEduBar + kEduDmaDst, dst, 8);
    Mmio(kEduBar + kEduDmaCnt, len, 8);
    Mmio(kEduBar + kEduDmaCmd, to_ram ? 3 : 1, 8);
    m().clock().Step(100'000'000);
    const uint64_t cmd = Mmio(kEduBar + kEduDmaCmd, 8);
    if (cmd & 1) Fail("edu DMA still running after 100 ms", src, cmd);
  };
  run(iova, kEduBuffer, false);  // RAM -> buffer
  if (ready_ && !broken_) CollectFaults(kEduDevfn, false);
  if (!any_fault && all_ram && back) {
    // The source bytes, before the write-back can overwrite them.
    std::vector<uint8_t> want(len);
    for (uint32_t i = 0; i < len; ++i) {
      RamRead(shadow_.Translate(kEduDevfn, iova + i, false).phys, &want[i], 1);
    }
    run(kEduBuffer, iova2, true);  // buffer -> RAM
    for (uint32_t i = 0; i < len; ++i) {
      uint8_t got = 0;
      RamRead(shadow_.Translate(kEduDevfn, iova2 + i, true).phys, &got, 1);
      if (got != want[i]) Fail("edu DMA bytes differ", iova + i, iova2 + i);
    }
  }
  if (Verbose()) {
    std::fprintf(stderr,
                 "virtio_iommu_fuzzer: edu DMA 0x%" PRIx64 " -> 0x%" PRIx64
                 " len %u: %s%s%s\n",
                 iova, iova2, len, any_fault ? "fault" : "ok",
                 all_ram ? "" : " (not all RAM)", back ? ", checked" : "");
  }
}

void Program::Step() {
  const uint8_t op = in_.U8();
  switch (op % 16) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
      QueueRequest();
      return;
    case 6:
      if ((op & 0xf0) >= 0xc0)
        QueueMalformed();
      else
        QueueRequest();
      return;
    case 7:
    case 8:
      Kick();
      return;
    case 9:
      WriteBypass();
      return;
    case 10:
      if ((op & 0xf0) >= 0x80)
        DeviceReset();
      else
        Kick();
      return;
    case 11:
      if ((op & 0xf0) >= 0xc0)
        SystemReset();
      else
        Kick();
      return;
    case 12:
      Kick();
      TestdevDma();
      return;
    case 13:
      Kick();
      EduDma();
      return;
    case 14: {
      Kick();
      const uint8_t i = in_.U8();
      mach_->Register(i % kWatched.size());  // fresh recorder, replayed
      CheckMappings();
      return;
    }
    default:
      PostEventBuffers(1 + (in_.U8() & 7));
      return;
  }
}

void Program::Finish() {
  Kick();
  if (!tracing_) return;
  Note(shadow_.domain_count());
  Note(mach_->iommu().bypass());
  vio::VirtioPciFunction* fn = mach_->function();
  // Not config_generation: it survives system_reset (as QEMU 7.2's
  // VirtIODevice.generation) and no action reads it.
  Note(fn->isr());
  Note(fn->device_status());
  Note(m().clock().now_ns());
  static uint8_t page[4096];
  for (uint64_t gpa = 0; gpa < kRamSize; gpa += sizeof page) {
    RamRead(gpa, page, sizeof page);
    Trace().Add(page, sizeof page);
  }
}

}  // namespace
}  // namespace viommu::fuzz::virtio_iommu_target

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace t = viommu::fuzz::virtio_iommu_target;
  t::Input in(data, size);
  const bool boot_bypass = !(in.U8() & 1);
  static std::unique_ptr<t::Machine> machines[2];
  std::unique_ptr<t::Machine>& m = machines[boot_bypass ? 1 : 0];
  if (m != nullptr && viommu::fuzz::Mode().fresh) m.reset();
  if (m == nullptr) {
    m = std::make_unique<t::Machine>(boot_bypass);
  } else {
    m->ResetForReuse();
  }
  viommu::fuzz::Trace().Clear();
  t::Program program(m.get(), &in);
  program.Start();
  for (int i = 0; i < t::kMaxActions && !in.empty(); ++i) program.Step();
  program.Finish();
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
