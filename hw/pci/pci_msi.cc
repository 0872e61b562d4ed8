// PciDevice's capability list and MSI capability: QEMU's
// pci_add_capability / pci_find_space (hw/pci/pci.c) and msi_init,
// msi_write_config, msi_reset, msi_notify (hw/pci/msi.c), without
// per-vector masking.
#include <bit>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_format.h"
#include "viommu/hw/pci/pci_device.h"
#include "viommu/util/le_bytes.h"

namespace viommu::hw::pci {
namespace {

unsigned MsiCapSize(uint16_t flags) {
  return (flags & kMsiFlags64Bit) ? 0x0e : 0x0a;
}

// log2 of the vector counts encoded in the capable (QMASK) and enabled
// (QSIZE) fields.
unsigned LogCapable(uint16_t flags) { return (flags & kMsiFlagsQmask) >> 1; }
unsigned LogEnabled(uint16_t flags) { return (flags & kMsiFlagsQsize) >> 4; }

}  // namespace

absl::StatusOr<uint8_t> PciDevice::AddCapability(uint8_t cap_id, uint8_t size,
                                                 uint8_t offset) {
  constexpr unsigned kEnd = kConventionalConfigSize;
  const unsigned used = (size + 3u) & ~3u;
  if (size == 0) return absl::InvalidArgumentError("empty capability");
  if (offset == 0) {
    // QEMU's pci_find_space: the first run of `size` unused bytes.
    unsigned start = kConfigHeaderSize;
    for (unsigned i = kConfigHeaderSize; i < kEnd; ++i) {
      if (cap_used_[i]) {
        start = i + 1;
      } else if (i - start + 1 == size) {
        offset = static_cast<uint8_t>(start);
        break;
      }
    }
    if (offset == 0) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("%s: no space for a %u-byte capability 0x%02x",
                          type_name_, size, cap_id));
    }
  } else {
    bool overlaps = offset < kConfigHeaderSize || offset + used > kEnd;
    for (unsigned i = offset; !overlaps && i < offset + size; ++i) {
      overlaps = cap_used_[i];
    }
    if (overlaps) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: capability 0x%02x at 0x%02x overlaps existing capabilities or "
          "lies outside 0x40..0xff",
          type_name_, cap_id, offset));
    }
  }
  config_[offset] = cap_id;
  config_[offset + 1] = config_[kCfgCapabilityList];
  config_[kCfgCapabilityList] = offset;
  config_[kCfgStatus] |= kStatusCapList;
  for (unsigned i = offset; i < offset + used && i < kEnd; ++i) {
    cap_used_[i] = true;
  }
  std::memset(&wmask_[offset], 0, size);
  return offset;
}

// QEMU's msi_init(dev, 0, vectors, is_64bit, /*per_vector_mask=*/false).
absl::StatusOr<uint8_t> PciDevice::AddMsiCapability(unsigned vectors,
                                                    bool is_64bit) {
  if (vectors == 0 || vectors > 32 || !std::has_single_bit(vectors)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: MSI vector count %u is not 1, 2, 4, 8, 16 or 32",
                        type_name_, vectors));
  }
  if (msi_cap_ != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: MSI capability already present", type_name_));
  }
  uint16_t flags = static_cast<uint16_t>(std::countr_zero(vectors) << 1);
  if (is_64bit) flags |= kMsiFlags64Bit;
  absl::StatusOr<uint8_t> cap =
      AddCapability(kCapIdMsi, static_cast<uint8_t>(MsiCapSize(flags)));
  if (!cap.ok()) return cap.status();
  msi_cap_ = *cap;
  StoreLe(&config_[msi_cap_ + kMsiFlags], flags, 2);
  StoreLe(&wmask_[msi_cap_ + kMsiFlags], kMsiFlagsQsize | kMsiFlagsEnable, 2);
  StoreLe(&wmask_[msi_cap_ + kMsiAddressLo], 0xfffffffc, 4);
  if (is_64bit) StoreLe(&wmask_[msi_cap_ + kMsiAddressHi], 0xffffffff, 4);
  StoreLe(&wmask_[msi_cap_ + (is_64bit ? kMsiData64 : kMsiData32)], 0xffff, 2);
  return msi_cap_;
}

bool PciDevice::msi_enabled() const {
  return msi_cap_ != 0 &&
         (LoadLe(&config_[msi_cap_ + kMsiFlags], 2) & kMsiFlagsEnable) != 0;
}

// QEMU's msi_write_config: with MSI enabled, an enabled vector count above
// the capable count is clamped to it.
void PciDevice::MsiWriteConfig(uint32_t offset, unsigned size) {
  if (msi_cap_ == 0) return;
  uint16_t flags =
      static_cast<uint16_t>(LoadLe(&config_[msi_cap_ + kMsiFlags], 2));
  const uint32_t cap = msi_cap_;
  if (offset >= cap + MsiCapSize(flags) || offset + size <= cap) return;
  if (!(flags & kMsiFlagsEnable)) return;
  if (LogEnabled(flags) > LogCapable(flags)) {
    flags = static_cast<uint16_t>((flags & ~kMsiFlagsQsize) |
                                  (LogCapable(flags) << 4));
    StoreLe(&config_[cap + kMsiFlags], flags, 2);
  }
}

// QEMU's msi_reset.
void PciDevice::MsiReset() {
  if (msi_cap_ == 0) return;
  uint16_t flags =
      static_cast<uint16_t>(LoadLe(&config_[msi_cap_ + kMsiFlags], 2));
  flags &= ~(kMsiFlagsQsize | kMsiFlagsEnable);
  const bool is64 = flags & kMsiFlags64Bit;
  StoreLe(&config_[msi_cap_ + kMsiFlags], flags, 2);
  StoreLe(&config_[msi_cap_ + kMsiAddressLo], 0, 4);
  if (is64) StoreLe(&config_[msi_cap_ + kMsiAddressHi], 0, 4);
  StoreLe(&config_[msi_cap_ + (is64 ? kMsiData64 : kMsiData32)], 0, 2);
}

// QEMU's msi_notify / msi_get_message / msi_send_message.
bool PciDevice::MsiNotify(unsigned vector) {
  if (!msi_enabled()) return false;
  const uint16_t flags =
      static_cast<uint16_t>(LoadLe(&config_[msi_cap_ + kMsiFlags], 2));
  const unsigned nr_vectors = 1u << LogEnabled(flags);
  if (vector >= nr_vectors) return false;
  const bool is64 = flags & kMsiFlags64Bit;
  uint64_t address = LoadLe(&config_[msi_cap_ + kMsiAddressLo], 4);
  if (is64) {
    address |= uint64_t{LoadLe(&config_[msi_cap_ + kMsiAddressHi], 4)} << 32;
  }
  uint32_t data = static_cast<uint32_t>(
      LoadLe(&config_[msi_cap_ + (is64 ? kMsiData64 : kMsiData32)], 2));
  if (nr_vectors > 1) {
    data &= ~(nr_vectors - 1);
    data |= vector;
  }
  uint8_t bytes[4];
  StoreLe(bytes, data, 4);
  (void)DmaWrite(address, bytes, sizeof(bytes));
  return true;
}

}  // namespace viommu::hw::pci
