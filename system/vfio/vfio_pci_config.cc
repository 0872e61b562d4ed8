// VfioPciDevice's config space: BAR planning from the host's BAR registers
// and region sizes, the host capability walk, and the per-byte choice
// between the emulated config (PciDevice) and the host's config region
// (QEMU's emulated_config_bits idea, at byte granularity; see the header
// for which bytes go where).
#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/system/vfio/vfio_pci_device.h"
#include "viommu/util/le_bytes.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;
using hw::pci::BarType;
using hw::pci::kCfgBar0;
using hw::pci::kCfgCapabilityList;
using hw::pci::kCfgCommand;
using hw::pci::kCfgStatus;
using hw::pci::kConfigHeaderSize;

constexpr uint8_t kCapIdPcie = 0x10;
constexpr uint8_t kCapIdMsix = 0x11;
constexpr size_t kMaxCaps = 48;  // (256 - 64) / 4: more means a loop

}  // namespace

absl::Status VfioPciDevice::PlanBars() {
  for (int i = 0; i < hw::pci::kNumBars; ++i) {
    const VfioRegionInfo& r = info_.regions[i];
    if (!r.present) continue;
    const uint32_t reg =
        static_cast<uint32_t>(LoadLe(&info_.config[kCfgBar0 + 4 * i], 4));
    BarPlan plan;
    plan.present = true;
    if (reg & hw::pci::kBarSpaceIo) {
      plan.type = BarType::kIo;
    } else {
      plan.type = (reg & 0x6) == hw::pci::kBarMemType64 ? BarType::kMem64
                                                        : BarType::kMem32;
      plan.prefetchable = (reg & hw::pci::kBarMemPrefetch) != 0;
      plan.mmap = !r.mmap_areas.empty();
    }
    const bool io = plan.type == BarType::kIo;
    const uint64_t max =
        plan.type == BarType::kMem64 ? uint64_t{1} << 63 : uint64_t{1} << 32;
    std::string bad;
    if (!std::has_single_bit(r.size)) {
      bad = "size is not a power of two";
    } else if (r.size < (io ? 4u : 16u)) {
      bad = "size under the PCI minimum";
    } else if (r.size > max) {
      bad = "too large for its type";
    } else if (plan.type == BarType::kMem64 && i + 1 >= hw::pci::kNumBars) {
      bad = "64-bit BAR in the last slot";
    }
    if (!bad.empty()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "vfio-pci %s: BAR %d (region size 0x%x, register 0x%08x): %s", host_,
          i, r.size, reg, bad));
    }
    bar_plan_[i] = plan;
    if (plan.type == BarType::kMem64) ++i;  // the upper half's slot
  }
  return absl::OkStatus();
}

void VfioPciDevice::PlanCapabilities() {
  const uint8_t* c = info_.config.data();
  const uint32_t len = info_.config_len;
  caps_.clear();
  if (!(LoadLe(c + kCfgStatus, 2) & hw::pci::kStatusCapList)) return;
  std::array<bool, 256> seen{};
  uint32_t pos = c[kCfgCapabilityList] & ~3u;
  while (pos != 0 && caps_.size() < kMaxCaps) {
    if (pos < kConfigHeaderSize || pos + 2 > len || seen[pos]) break;
    seen[pos] = true;
    caps_.push_back(CapPlan{.id = c[pos], .offset = static_cast<uint8_t>(pos)});
    pos = c[pos + 1] & ~3u;
  }
  bool have_msi = false;
  for (CapPlan& cap : caps_) {
    uint32_t end = len;
    for (const CapPlan& other : caps_) {
      if (other.offset > cap.offset && other.offset < end) end = other.offset;
    }
    cap.size = static_cast<uint8_t>(end - cap.offset);
    if (cap.id == hw::pci::kCapIdMsi) {
      // One MSI capability, if the host can signal MSI through eventfds
      // and the capability is whole.
      const bool usable = !have_msi && info_.msi.count > 0 &&
                          (info_.msi.flags & uapi::kIrqInfoEventfd) &&
                          cap.size >= 0x0a;
      cap.mode = usable ? CapMode::kMsi : CapMode::kHidden;
      have_msi |= usable;
    } else if (cap.id == kCapIdMsix || cap.id == kCapIdPcie) {
      cap.mode = CapMode::kHidden;
    } else {
      cap.mode = CapMode::kPassReadOnly;
    }
  }
}

absl::Status VfioPciDevice::ApplyCapabilities() {
  read_host_.fill(false);
  write_host_.fill(false);
  // Passed-through capabilities at their host offsets, linked so that the
  // list keeps the host's order; MSI last, so it heads the list.
  for (auto it = caps_.rbegin(); it != caps_.rend(); ++it) {
    if (it->mode != CapMode::kPassReadOnly) continue;
    absl::StatusOr<uint8_t> off = AddCapability(it->id, it->size, it->offset);
    if (!off.ok()) return off.status();
  }
  uint8_t msi_size = 0;
  for (const CapPlan& cap : caps_) {
    if (cap.mode != CapMode::kMsi) continue;
    const uint16_t flags = static_cast<uint16_t>(
        LoadLe(&info_.config[cap.offset + hw::pci::kMsiFlags], 2));
    unsigned vectors = 1u << ((flags & hw::pci::kMsiFlagsQmask) >> 1);
    vectors = std::min(vectors, std::bit_floor(info_.msi.count));
    vectors = std::min(vectors, 32u);
    const bool is64 = (flags & hw::pci::kMsiFlags64Bit) != 0;
    absl::StatusOr<uint8_t> off = AddMsiCapability(vectors, is64);
    if (!off.ok()) return off.status();
    msi_size = is64 ? 0x0e : 0x0a;
  }

  // Device-specific bytes outside every capability: the host's.
  for (uint32_t o = kConfigHeaderSize; o < info_.config_len; ++o) {
    read_host_[o] = write_host_[o] = true;
  }
  for (const CapPlan& cap : caps_) {
    for (uint32_t o = cap.offset; o < cap.offset + cap.size; ++o) {
      read_host_[o] = write_host_[o] = false;  // emulated or hidden
    }
    if (cap.mode == CapMode::kPassReadOnly) {
      for (uint32_t o = cap.offset + 2u; o < cap.offset + cap.size; ++o) {
        read_host_[o] = true;  // the body, live and read-only
      }
    }
  }
  if (msi_cap() != 0) {
    for (uint32_t o = msi_cap(); o < msi_cap() + msi_size && o < 256; ++o) {
      read_host_[o] = write_host_[o] = false;
    }
  }
  write_host_[kCfgCommand] = write_host_[kCfgCommand + 1] = true;
  return absl::OkStatus();
}

uint32_t VfioPciDevice::ConfigRead(uint32_t offset, unsigned size) {
  uint32_t v = PciDevice::ConfigRead(offset, size);
  if (offset >= read_host_.size()) return v;
  const unsigned n = std::min<unsigned>(
      size, static_cast<unsigned>(read_host_.size() - offset));
  bool any = false;
  for (unsigned i = 0; i < n; ++i) any |= read_host_[offset + i];
  if (!any) return v;
  uint8_t buf[4];
  if (!HostConfigRead(offset, buf, n)) std::memset(buf, 0xff, sizeof(buf));
  for (unsigned i = 0; i < n; ++i) {
    if (!read_host_[offset + i]) continue;
    v = (v & ~(0xffu << (8 * i))) | (uint32_t{buf[i]} << (8 * i));
  }
  return v;
}

void VfioPciDevice::ConfigWrite(uint32_t offset, uint32_t value,
                                unsigned size) {
  uint8_t bytes[4];
  StoreLe(bytes, value, 4);
  // Host-bound bytes go out in contiguous runs, before the local update
  // (QEMU writes the device first, then the emulated config).
  unsigned i = 0;
  while (i < size && offset + i < write_host_.size()) {
    if (!write_host_[offset + i]) {
      ++i;
      continue;
    }
    unsigned j = i;
    while (j < size && offset + j < write_host_.size() &&
           write_host_[offset + j]) {
      ++j;
    }
    HostConfigWrite(offset + i, bytes + i, j - i);
    i = j;
  }
  PciDevice::ConfigWrite(offset, value, size);
  UpdateMsiState();
}

bool VfioPciDevice::HostConfigRead(uint32_t offset, uint8_t* buf,
                                   unsigned len) {
  const VfioRegionInfo& cfg = info_.regions[uapi::kPciConfigRegionIndex];
  const int64_t n = backend_->Pread(fd_, buf, len, cfg.offset + offset);
  if (n == len) return true;
  const std::string args = absl::StrFormat(
      "fd=%d, %s config, len=%u, offset=0x%x", fd_, host_, len, offset);
  RecordHostError(n < 0 ? VfioHostCallError(n, "pread", args)
                        : absl::DataLossError(absl::StrFormat(
                              "pread(%s): short read of %d bytes", args, n)));
  return false;
}

void VfioPciDevice::HostConfigWrite(uint32_t offset, const uint8_t* buf,
                                    unsigned len) {
  const VfioRegionInfo& cfg = info_.regions[uapi::kPciConfigRegionIndex];
  const int64_t n = backend_->Pwrite(fd_, buf, len, cfg.offset + offset);
  if (n == len) return;
  const std::string args = absl::StrFormat(
      "fd=%d, %s config, len=%u, offset=0x%x", fd_, host_, len, offset);
  RecordHostError(n < 0 ? VfioHostCallError(n, "pwrite", args)
                        : absl::DataLossError(absl::StrFormat(
                              "pwrite(%s): short write of %d bytes", args, n)));
}

}  // namespace viommu::system
