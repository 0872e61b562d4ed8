// viommu/memory/ram_reader.h — reads guest RAM through one memory map held
// for the reader's lifetime, remembering the last RAM range it hit: for a
// burst of small reads on one thread (a page-table walk: one 8-byte entry
// per level), each read is a bounds check and a copy instead of a map
// lookup and a reference-count round trip.
//
//   memory::RamReader ram(&system_as);
//   uint64_t pte;
//   if (!ram.Read(table + idx * 8, &pte, 8)) -> not RAM: fault
//
// Semantics are AddressSpace::ReadRam's: only RAM (not ram_device, not
// MMIO) is read, a piece that is not RAM fails and reads as zero. The map
// is the one current when the reader was made; keep readers short-lived
// (they keep that map and its regions alive).
//
// Threading: one thread per reader; any number of readers on any threads.
#ifndef VIOMMU_MEMORY_RAM_READER_H_
#define VIOMMU_MEMORY_RAM_READER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "viommu/memory/address_space.h"
#include "viommu/memory/flat_view.h"
#include "viommu/util/types.h"

namespace viommu::memory {

class RamReader {
 public:
  // `as` must outlive the reader.
  explicit RamReader(AddressSpace* as) : as_(as), view_(as->CurrentView()) {}
  RamReader(const RamReader&) = delete;
  RamReader& operator=(const RamReader&) = delete;

  // Copies `len` bytes at `addr` into `buf`; false (and the bytes that are
  // not RAM zeroed) when any byte is not RAM in the held map.
  bool Read(Hwaddr addr, void* buf, size_t len) {
    if (len == 0) return true;
    if (last_ != nullptr && addr >= last_->range.first &&
        addr <= last_->range.last && len - 1 <= last_->range.last - addr) {
      std::memcpy(buf, host_ + (addr - last_->range.first), len);
      return true;
    }
    return ReadSlow(addr, buf, len);
  }

 private:
  bool ReadSlow(Hwaddr addr, void* buf, size_t len);

  AddressSpace* const as_;
  const std::shared_ptr<const FlatView> view_;
  const FlatRange* last_ = nullptr;  // in view_; RAM
  uint8_t* host_ = nullptr;          // host address of last_->range.first
};

}  // namespace viommu::memory

#endif  // VIOMMU_MEMORY_RAM_READER_H_
