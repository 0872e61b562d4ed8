// viommu/hw/iommu/vtd_guest_memory.h — how the remapping unit reaches guest
// memory for its own structures: root and context tables, page tables,
// invalidation descriptors and invalidation-wait status writes. QEMU uses
// address_space_memory for all of them, with no address-width masking.
//
//   AddressSpaceGuestMemory mem(&system_as);
//   uint64_t root_lo;
//   if (!mem.Read(rtaddr + bus * 16, &root_lo, 8)) -> kRootTableInv
//
// Values in guest memory are little-endian, as the host must be (asserted
// below), so LoadLe64 is a copy.
//
// Threading: Read is safe from any thread (translation runs on DMA
// threads); Write is used from the control context only.
#ifndef VIOMMU_HW_IOMMU_VTD_GUEST_MEMORY_H_
#define VIOMMU_HW_IOMMU_VTD_GUEST_MEMORY_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "viommu/memory/address_space.h"
#include "viommu/memory/ram_reader.h"
#include "viommu/util/types.h"

namespace viommu::vtd {

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  virtual ~GuestMemory() = default;

  // Reads `len` bytes at guest-physical `addr`. False when any byte could
  // not be read (unassigned, or an access error): QEMU's MEMTX_OK check.
  virtual bool Read(Hwaddr addr, void* buf, size_t len) = 0;
  // Writes `len` bytes; false as for Read.
  virtual bool Write(Hwaddr addr, const void* buf, size_t len) = 0;
  // The address space Read reads RAM of, if it is one (BurstGuestMemory
  // then reads it through a memory::RamReader).
  virtual memory::AddressSpace* address_space() { return nullptr; }
};

// GuestMemory over an AddressSpace (system memory), attributes unspecified.
// Reads see RAM only: a table pointer into MMIO (or a BAR) fails as an
// unreadable entry, with the fault reason of the structure read, instead of
// running device MMIO on the translating (DMA) thread. QEMU 7.2 reads
// through its memory API, so MMIO there answers with register values;
// docs/architecture.md lists the difference. Writes (invalidation-wait
// status, control context only) go through the address space as in QEMU.
class AddressSpaceGuestMemory final : public GuestMemory {
 public:
  // `as` is not owned and must outlive this.
  explicit AddressSpaceGuestMemory(memory::AddressSpace* as) : as_(as) {}
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    return as_->ReadRam(addr, buf, len).ok();
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    return as_->Write(addr, buf, len).ok();
  }
  memory::AddressSpace* address_space() override { return as_; }

 private:
  memory::AddressSpace* as_;  // not owned
};

// `mem` for one burst of structure reads on one thread (a shadow sync's
// context read and page walks): the same answers, but over an address
// space each read is a bounds check and a copy from the memory map held
// for the burst (memory/ram_reader.h) instead of a map lookup. Writes go
// to `mem`. Keep it on the stack of the burst.
class BurstGuestMemory final : public GuestMemory {
 public:
  explicit BurstGuestMemory(GuestMemory& mem) : mem_(mem) {
    if (memory::AddressSpace* as = mem.address_space()) ram_.emplace(as);
  }
  bool Read(Hwaddr addr, void* buf, size_t len) override {
    return ram_.has_value() ? ram_->Read(addr, buf, len)
                            : mem_.Read(addr, buf, len);
  }
  bool Write(Hwaddr addr, const void* buf, size_t len) override {
    return mem_.Write(addr, buf, len);
  }
  memory::AddressSpace* address_space() override {
    return mem_.address_space();
  }

 private:
  GuestMemory& mem_;
  std::optional<memory::RamReader> ram_;
};

static_assert(std::endian::native == std::endian::little,
              "VT-d structures are read as host integers");

inline uint64_t LoadLe64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace viommu::vtd

#endif  // VIOMMU_HW_IOMMU_VTD_GUEST_MEMORY_H_
