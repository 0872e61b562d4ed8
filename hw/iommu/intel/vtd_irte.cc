// Remappable MSI decoding, IRTE checks and the remapped message.
#include "viommu/hw/iommu/vtd_irte.h"

namespace viommu::vtd {

MsiRequestDecode DecodeMsiRequest(uint64_t address, uint32_t data) {
  MsiRequestDecode d;
  d.high_address = (address >> 32) != 0;
  d.bad_head = (address & kMsiAddrHeadMask) != kMsiAddrHead;
  d.remappable = (address & kMsiAddrIf) != 0;
  d.shv = (address & kMsiAddrShv) != 0;
  d.handle =
      static_cast<uint32_t>((address >> kMsiAddrHandleShift) &
                            kMsiAddrHandleMask) |
      ((address & kMsiAddrHandle15) ? 1u << 15 : 0u);
  d.index = d.handle;
  if (d.shv) {
    d.index += data & kMsiDataSubhandleMask;
    d.data_reserved = (data & ~kMsiDataSubhandleMask) != 0;
  }
  return d;
}

bool IrteReservedBitsSet(const Irte& e, bool eime) {
  if (e.lo & kIrteLoReserved) return true;
  if (!eime && (e.lo & kIrteLoReservedXapic)) return true;
  if (e.hi & kIrteHiReserved) return true;
  const uint8_t dlm = e.delivery_mode();
  return dlm == 3 || dlm == 6;
}

bool VerifySourceId(const Irte& e, uint16_t sid) {
  switch (e.svt()) {
    case Irte::kSvtNone:
      return true;
    case Irte::kSvtRequesterId: {
      // SQ: how many low function bits (from bit 2 down) to ignore.
      static constexpr uint16_t kMask[4] = {0xffff, 0xfffb, 0xfff9, 0xfff8};
      const uint16_t mask = kMask[e.sq()];
      return (sid & mask) == (e.sid() & mask);
    }
    case Irte::kSvtBusRange: {
      const unsigned bus = sid >> 8;
      const unsigned start = e.sid() >> 8;
      const unsigned end = e.sid() & 0xff;
      return bus >= start && bus <= end;
    }
    default:
      return false;  // reserved encoding
  }
}

uint32_t IrteDestination(const Irte& e, bool eime) {
  return eime ? e.dest_id() : (e.dest_id() >> 8) & 0xff;
}

InterruptMessage ComposeMessage(const Irte& e, bool eime,
                                uint64_t request_address) {
  const uint32_t dest = IrteDestination(e, eime);
  InterruptMessage m;
  m.address = kMsiAddrHead | uint64_t{dest & 0xff} << kMsiAddrDestShift |
              (e.redirection_hint() ? kMsiAddrRh : 0) |
              (e.dest_mode_logical() ? kMsiAddrDm : 0) |
              (request_address & kMsiAddrDontCare) |
              uint64_t{dest & 0xffff'ff00} << 32;
  m.data = e.vector() | uint32_t{e.delivery_mode()} << kMsiDataDlmShift |
           kMsiDataLevelAssert |
           (e.trigger_level() ? kMsiDataTriggerLevel : 0);
  return m;
}

}  // namespace viommu::vtd
