// viommu/util/le_bytes.h — little-endian loads and stores of 1..8 bytes and
// the all-ones value of an access size: what every register file and
// config space of viommu uses to turn bytes into values.
//
//   uint64_t v = LoadLe(&config[offset], size);
//   StoreLe(&config[offset], v | bit, size);
//   return AllOnes(size);   // an ignored read
//
// REQUIRES: size <= 8 (LoadLe/StoreLe), size >= 1 (AllOnes).
#ifndef VIOMMU_UTIL_LE_BYTES_H_
#define VIOMMU_UTIL_LE_BYTES_H_

#include <bit>
#include <cstdint>
#include <cstring>

namespace viommu {

// The common sizes are one unaligned load or store on a little-endian
// host (register files run these on every guest access); others loop.
inline uint64_t LoadLe(const uint8_t* p, unsigned size) {
  if constexpr (std::endian::native == std::endian::little) {
    switch (size) {
      case 8: {
        uint64_t v;
        std::memcpy(&v, p, 8);
        return v;
      }
      case 4: {
        uint32_t v;
        std::memcpy(&v, p, 4);
        return v;
      }
      case 2: {
        uint16_t v;
        std::memcpy(&v, p, 2);
        return v;
      }
      case 1:
        return p[0];
      default:
        break;
    }
  }
  uint64_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

inline void StoreLe(uint8_t* p, uint64_t v, unsigned size) {
  if constexpr (std::endian::native == std::endian::little) {
    switch (size) {
      case 8:
        std::memcpy(p, &v, 8);
        return;
      case 4: {
        const auto w = static_cast<uint32_t>(v);
        std::memcpy(p, &w, 4);
        return;
      }
      case 2: {
        const auto w = static_cast<uint16_t>(v);
        std::memcpy(p, &w, 2);
        return;
      }
      case 1:
        p[0] = static_cast<uint8_t>(v);
        return;
      default:
        break;
    }
  }
  for (unsigned i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// The value an ignored read of `size` bytes returns.
inline uint64_t AllOnes(unsigned size) {
  return size >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
}

}  // namespace viommu

#endif  // VIOMMU_UTIL_LE_BYTES_H_
