#include "viommu/hw/iommu/vtd_register_file.h"

namespace viommu::vtd {

void RegisterFile::Clear() {
  csr_.fill(0);
  wmask_.fill(0);
  w1cmask_.fill(0);
  womask_.fill(0);
}

void RegisterFile::DefineLong(uint16_t off, uint32_t val, uint32_t wmask,
                              uint32_t w1cmask) {
  Store<uint32_t>(csr_, off, val);
  Store<uint32_t>(wmask_, off, wmask);
  Store<uint32_t>(w1cmask_, off, w1cmask);
}

void RegisterFile::DefineQuad(uint16_t off, uint64_t val, uint64_t wmask,
                              uint64_t w1cmask) {
  Store<uint64_t>(csr_, off, val);
  Store<uint64_t>(wmask_, off, wmask);
  Store<uint64_t>(w1cmask_, off, w1cmask);
}

void RegisterFile::DefineLongWo(uint16_t off, uint32_t womask) {
  Store<uint32_t>(womask_, off, womask);
}

void RegisterFile::DefineQuadWo(uint16_t off, uint64_t womask) {
  Store<uint64_t>(womask_, off, womask);
}

}  // namespace viommu::vtd
