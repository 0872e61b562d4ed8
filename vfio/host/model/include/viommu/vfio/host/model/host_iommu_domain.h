// viommu/vfio/host/model/host_iommu_domain.h — one modelled host IOMMU
// domain (Linux's iommu_domain): the IOVA -> process-address page table
// that a passthrough device's DMA goes through.
//
// type1 keeps one per vfio_domain and maps every vfio_dma into each;
// iommufd keeps one per HWPT_PAGING. Simulated host devices translate their
// DMA here; an IOVA with no mapping (or without the needed permission) is a
// host IOMMU fault that the device counts.
//
//   HostIommuDomain d(/*aperture_last=*/(1ull << 48) - 1,
//                     platform.pgsize_bitmap);
//   int err = d.Map(0x100000, hva, 0x10000, kPermRead | kPermWrite);  // 0
//   std::optional<uint64_t> hva2 =
//       d.Translate(0x100040, 64, /*write=*/true);  // hva + 0x40
//
// Mappings are stored as ranges (one btree node per Map call), so a domain
// with 100k mappings costs 100k nodes and Translate is O(log n).
// Thread-safety: control context only.
#ifndef VIOMMU_VFIO_HOST_MODEL_HOST_IOMMU_DOMAIN_H_
#define VIOMMU_VFIO_HOST_MODEL_HOST_IOMMU_DOMAIN_H_

#include <cstdint>
#include <optional>

#include "absl/container/btree_map.h"

namespace viommu::vfio::model {

inline constexpr uint32_t kPermRead = 1;
inline constexpr uint32_t kPermWrite = 2;

class HostIommuDomain {
 public:
  HostIommuDomain(uint64_t aperture_last, uint64_t pgsize_bitmap)
      : aperture_last_(aperture_last), pgsize_bitmap_(pgsize_bitmap) {}
  HostIommuDomain(const HostIommuDomain&) = delete;
  HostIommuDomain& operator=(const HostIommuDomain&) = delete;

  uint64_t aperture_start() const { return 0; }
  uint64_t aperture_last() const { return aperture_last_; }
  uint64_t pgsize_bitmap() const { return pgsize_bitmap_; }

  // iommu_map: 0, or -EINVAL (outside the aperture, misaligned to the
  // smallest page, zero length), -EEXIST (overlaps a mapping).
  [[nodiscard]] int Map(uint64_t iova, uint64_t hva, uint64_t len,
                        uint32_t perm);
  // iommu_unmap of exactly the mappings inside [iova, iova + len);
  // returns the bytes unmapped. Mappings straddling the range are split.
  uint64_t Unmap(uint64_t iova, uint64_t len);
  void UnmapAll();

  // The process address for a DMA of `len` bytes at `iova`, or nullopt (a
  // host IOMMU fault) if any byte is unmapped or lacks the permission.
  std::optional<uint64_t> Translate(uint64_t iova, uint64_t len,
                                    bool write) const;
  // iova_to_phys for one byte (replay of an existing domain): the hva.
  std::optional<uint64_t> IovaToHva(uint64_t iova) const;

  uint64_t mapping_count() const { return map_.size(); }
  uint64_t mapped_bytes() const { return mapped_bytes_; }

 private:
  struct Mapping {
    uint64_t last;  // inclusive
    uint64_t hva;
    uint32_t perm;
  };
  absl::btree_map<uint64_t, Mapping> map_;  // iova -> mapping
  uint64_t aperture_last_;
  uint64_t pgsize_bitmap_;
  uint64_t mapped_bytes_ = 0;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_HOST_IOMMU_DOMAIN_H_
