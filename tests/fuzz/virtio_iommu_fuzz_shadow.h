// The virtio_iommu fuzz target's reference model: what the device must
// answer to each request and how each endpoint must translate, written
// from VIRTIO 1.2 §5.13, QEMU 7.2 and docs/virtio-iommu.md (not from the
// model's code). The oracles compare the device with it after each batch.
#ifndef VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_SHADOW_H_
#define VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_SHADOW_H_

#include "tests/fuzz/virtio_iommu_fuzz_layout.h"

namespace viommu::fuzz::virtio_iommu_target {

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
        for (int i = 0; i < 8; ++i)
          out.push_back(static_cast<uint8_t>(v >> 8 * i));
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

}  // namespace viommu::fuzz::virtio_iommu_target

#endif  // VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_SHADOW_H_
