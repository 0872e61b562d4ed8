#include "tests/qtest/vtd_guest.h"

namespace viommu::qtest {
namespace {

constexpr uint64_t kPresent = 1;  // root / context entry P bit
constexpr uint64_t kPageSize = 1ull << 7;
constexpr uint32_t kGcmdTe = 1u << 31, kGcmdSrtp = 1u << 30,
                   kGcmdQie = 1u << 26;

int LevelOf(uint64_t size) {
  return size == VtdGuest::k1G ? 3 : size == VtdGuest::k2M ? 2 : 1;
}

uint64_t IndexAt(uint64_t iova, int level) {
  return (iova >> (12 + 9 * (level - 1))) & 0x1ff;
}

}  // namespace

VtdGuest::VtdGuest(QtestClient* qts, int levels) : qts_(qts), levels_(levels) {
  qts_->Memset(kRootTable, 0x2000, 0);
  qts_->Writeq(kRootTable, kContextTable | kPresent);
}

uint64_t VtdGuest::AllocTable() {
  const uint64_t t = next_table_;
  next_table_ += 0x1000;
  qts_->Memset(t, 0x1000, 0);
  return t;
}

uint64_t VtdGuest::TopTable(uint8_t devfn) {
  if (top_[devfn] == 0) top_[devfn] = AllocTable();
  return top_[devfn];
}

void VtdGuest::SetContext(uint8_t devfn, uint16_t did, uint8_t tt, bool fpd) {
  const uint64_t lo =
      TopTable(devfn) | (uint64_t{tt} << 2) | (fpd ? 2u : 0u) | kPresent;
  const uint64_t hi = (uint64_t{did} << 8) | static_cast<uint64_t>(levels_ - 2);
  SetRawContext(devfn, lo, hi);
}

void VtdGuest::SetRawContext(uint8_t devfn, uint64_t lo, uint64_t hi) {
  qts_->Writeq(kContextTable + devfn * 16u, lo);
  qts_->Writeq(kContextTable + devfn * 16u + 8, hi);
}

void VtdGuest::ClearContext(uint8_t devfn) { SetRawContext(devfn, 0, 0); }

uint64_t VtdGuest::PteAddress(uint8_t devfn, uint64_t iova, uint64_t size) {
  uint64_t table = TopTable(devfn);
  for (int level = levels_; level > LevelOf(size); --level) {
    const uint64_t slot = table + IndexAt(iova, level) * 8;
    uint64_t entry = qts_->Readq(slot);
    if ((entry & kRw) == 0) {
      entry = AllocTable() | kRw;
      qts_->Writeq(slot, entry);
    }
    table = entry & 0x000f'ffff'ffff'f000ull;
  }
  return table + IndexAt(iova, LevelOf(size)) * 8;
}

void VtdGuest::Map(uint8_t devfn, uint64_t iova, uint64_t gpa, uint64_t size,
                   uint64_t perm) {
  const uint64_t pte = gpa | perm | (size > k4K ? kPageSize : 0);
  qts_->Writeq(PteAddress(devfn, iova, size), pte);
}

void VtdGuest::Unmap(uint8_t devfn, uint64_t iova, uint64_t size) {
  qts_->Writeq(PteAddress(devfn, iova, size), 0);
}

void VtdGuest::Gcmd(uint32_t bit, bool on) {
  if (on) {
    qts_->Writel(kRegBase + kGcmd, gcmd_ | bit);
    if (bit != kGcmdSrtp) gcmd_ |= bit;  // SRTP is one-shot
  } else {
    gcmd_ &= ~bit;
    qts_->Writel(kRegBase + kGcmd, gcmd_);
  }
}

void VtdGuest::Enable() {
  qts_->Writeq(kRegBase + kRtaddr, kRootTable);
  Gcmd(kGcmdSrtp, true);
  Gcmd(kGcmdTe, true);
}

void VtdGuest::Disable() { Gcmd(kGcmdTe, false); }

uint32_t VtdGuest::Gsts() { return qts_->Readl(kRegBase + kGsts); }

void VtdGuest::InvalidateContextGlobal() {
  qts_->Writeq(kRegBase + kCcmd, (1ull << 63) | (1ull << 61));
}

void VtdGuest::InvalidateIotlbGlobal() {
  qts_->Writeq(kRegBase + kIotlb, (1ull << 63) | (1ull << 60));
}

void VtdGuest::InvalidateIotlbDomain(uint16_t did) {
  qts_->Writeq(kRegBase + kIotlb,
               (1ull << 63) | (2ull << 60) | (uint64_t{did} << 32));
}

void VtdGuest::InvalidateIotlbPage(uint16_t did, uint64_t addr, uint8_t am) {
  qts_->Writeq(kRegBase + kIva, addr | am);
  qts_->Writeq(kRegBase + kIotlb,
               (1ull << 63) | (3ull << 60) | (uint64_t{did} << 32));
}

void VtdGuest::EnableQueue(uint64_t base) {
  queue_ = base;
  tail_ = 0;
  qts_->Memset(base, 0x1000, 0);
  qts_->Writeq(kRegBase + kIqa, base);  // QS=0: 256 descriptors, DW=0
  Gcmd(kGcmdQie, true);
}

void VtdGuest::Submit(uint64_t lo, uint64_t hi) {
  qts_->Writeq(queue_ + tail_ * 16u, lo);
  qts_->Writeq(queue_ + tail_ * 16u + 8, hi);
  tail_ = (tail_ + 1) % 256;
  qts_->Writeq(kRegBase + kIqt, uint64_t{tail_} << 4);
}

void VtdGuest::SubmitWait(uint64_t status_addr, uint32_t data, bool interrupt) {
  const uint64_t lo =
      0x5 | (1u << 5) | (interrupt ? 1u << 4 : 0u) | (uint64_t{data} << 32);
  Submit(lo, status_addr);
}

VtdGuest::Fault VtdGuest::ReadFault() {
  return {qts_->Readq(kRegBase + kFrcdLo), qts_->Readq(kRegBase + kFrcdHi)};
}

void VtdGuest::ClearFaults() {
  qts_->Writel(kRegBase + kFrcdHi + 4, 0x8000'0000);
  qts_->Writel(kRegBase + kFsts, 0x11);
}

}  // namespace viommu::qtest
