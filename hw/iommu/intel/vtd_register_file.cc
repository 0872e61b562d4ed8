#include "viommu/hw/iommu/vtd_register_file.h"

#include "viommu/util/check.h"
#include "viommu/util/le_bytes.h"

namespace viommu::vtd {

uint64_t RegisterFile::Load(const Bytes& b, uint16_t off, unsigned size) {
  VIOMMU_CHECK(off + size <= b.size());
  return LoadLe(&b[off], size);
}

void RegisterFile::Store(Bytes& b, uint16_t off, unsigned size, uint64_t val) {
  VIOMMU_CHECK(off + size <= b.size());
  StoreLe(&b[off], val, size);
}

void RegisterFile::Clear() {
  csr_.fill(0);
  wmask_.fill(0);
  w1cmask_.fill(0);
  womask_.fill(0);
}

void RegisterFile::DefineLong(uint16_t off, uint32_t val, uint32_t wmask,
                              uint32_t w1cmask) {
  Store(csr_, off, 4, val);
  Store(wmask_, off, 4, wmask);
  Store(w1cmask_, off, 4, w1cmask);
}

void RegisterFile::DefineQuad(uint16_t off, uint64_t val, uint64_t wmask,
                              uint64_t w1cmask) {
  Store(csr_, off, 8, val);
  Store(wmask_, off, 8, wmask);
  Store(w1cmask_, off, 8, w1cmask);
}

void RegisterFile::DefineLongWo(uint16_t off, uint32_t womask) {
  Store(womask_, off, 4, womask);
}

void RegisterFile::DefineQuadWo(uint16_t off, uint64_t womask) {
  Store(womask_, off, 8, womask);
}

void RegisterFile::SetLong(uint16_t off, uint32_t val) {
  const uint32_t old = uint32_t(Load(csr_, off, 4));
  const uint32_t wmask = uint32_t(Load(wmask_, off, 4));
  const uint32_t w1c = uint32_t(Load(w1cmask_, off, 4));
  Store(csr_, off, 4, ((old & ~wmask) | (val & wmask)) & ~(w1c & val));
}

void RegisterFile::SetQuad(uint16_t off, uint64_t val) {
  const uint64_t old = Load(csr_, off, 8);
  const uint64_t wmask = Load(wmask_, off, 8);
  const uint64_t w1c = Load(w1cmask_, off, 8);
  Store(csr_, off, 8, ((old & ~wmask) | (val & wmask)) & ~(w1c & val));
}

uint32_t RegisterFile::GetLong(uint16_t off) const {
  return uint32_t(Load(csr_, off, 4) & ~Load(womask_, off, 4));
}

uint64_t RegisterFile::GetQuad(uint16_t off) const {
  return Load(csr_, off, 8) & ~Load(womask_, off, 8);
}

uint32_t RegisterFile::GetLongRaw(uint16_t off) const {
  return uint32_t(Load(csr_, off, 4));
}

uint64_t RegisterFile::GetQuadRaw(uint16_t off) const {
  return Load(csr_, off, 8);
}

void RegisterFile::SetLongRaw(uint16_t off, uint32_t val) {
  Store(csr_, off, 4, val);
}

void RegisterFile::SetQuadRaw(uint16_t off, uint64_t val) {
  Store(csr_, off, 8, val);
}

uint32_t RegisterFile::SetClearMaskLong(uint16_t off, uint32_t clear,
                                        uint32_t set) {
  const uint32_t v = (GetLongRaw(off) & ~clear) | set;
  SetLongRaw(off, v);
  return v;
}

uint64_t RegisterFile::SetClearMaskQuad(uint16_t off, uint64_t clear,
                                        uint64_t set) {
  const uint64_t v = (GetQuadRaw(off) & ~clear) | set;
  SetQuadRaw(off, v);
  return v;
}

}  // namespace viommu::vtd
