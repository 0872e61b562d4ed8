// RamReader's miss path: find the range in the held map and remember it
// when it is RAM; anything else goes the general way.
#include "viommu/memory/ram_reader.h"

#include <cstring>

#include "viommu/memory/memory_region.h"

namespace viommu::memory {

bool RamReader::ReadSlow(Hwaddr addr, void* buf, size_t len) {
  const FlatRange* fr = view_->Lookup(addr);
  if (fr != nullptr && fr->mr->IsRam() && !fr->mr->IsRamDevice()) {
    last_ = fr;
    host_ = fr->mr->host() + fr->offset_in_region;
    if (len - 1 <= fr->range.last - addr) {
      std::memcpy(buf, host_ + (addr - fr->range.first), len);
      return true;
    }
  }
  // Not RAM, or spanning ranges: piece by piece, as ReadRam does (on the
  // current map, which on the thread that changes maps is the held one).
  return as_->ReadRam(addr, buf, len).ok();
}

}  // namespace viommu::memory
