// viommu/hw/iommu/vtd_irte.h — VT-d interrupt remapping, the pure part:
// the remappable-format MSI request (VT-d spec §5.1.2.2), the 128-bit
// interrupt-remapping table entry (IRTE, §9.10, remapped format) with its
// reserved bits and source-id verification, and the compatibility-format
// message an IRTE remaps to.
//
//   MsiRequestDecode d = DecodeMsiRequest(address, data);
//   if (d.remappable) index = d.index;          // handle (+ subhandle)
//   Irte e{lo, hi};                             // read at IRTA + 16 * index
//   if (!e.present()) -> FaultReason::kIrEntryP
//   if (IrteReservedBitsSet(e, eime)) -> kIrIrteRsvd
//   if (!VerifySourceId(e, sid)) -> kIrSidErr
//   InterruptMessage m = ComposeMessage(e, eime, address);
//
// Threading: pure inline functions and trivially copyable types.
#ifndef VIOMMU_HW_IOMMU_VTD_IRTE_H_
#define VIOMMU_HW_IOMMU_VTD_IRTE_H_

#include <cstdint>
#include <type_traits>

namespace viommu::vtd {

// An interrupt message as it leaves the remapper (address, data).
struct InterruptMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  friend bool operator==(const InterruptMessage&,
                         const InterruptMessage&) = default;
};

// MSI address fields (§5.1.2.2 and the compatibility format).
inline constexpr uint64_t kMsiAddrHeadMask = 0xfff0'0000;  // bits 31:20
inline constexpr uint64_t kMsiAddrHead = 0xfee0'0000;
inline constexpr uint64_t kMsiAddrIf = 1ull << 4;    // 1: remappable
inline constexpr uint64_t kMsiAddrShv = 1ull << 3;   // subhandle valid
inline constexpr uint64_t kMsiAddrHandle15 = 1ull << 2;
inline constexpr int kMsiAddrHandleShift = 5;        // handle[14:0], 19:5
inline constexpr uint64_t kMsiAddrHandleMask = 0x7fff;
inline constexpr uint64_t kMsiAddrDontCare = 0x3;    // bits 1:0
inline constexpr uint32_t kMsiDataSubhandleMask = 0xffff;
// Compatibility-format message fields (what a remapped interrupt becomes).
inline constexpr int kMsiAddrDestShift = 12;         // dest[7:0], 19:12
inline constexpr uint64_t kMsiAddrRh = 1ull << 3;
inline constexpr uint64_t kMsiAddrDm = 1ull << 2;
inline constexpr int kMsiDataDlmShift = 8;
inline constexpr uint32_t kMsiDataLevelAssert = 1u << 14;
inline constexpr uint32_t kMsiDataTriggerLevel = 1u << 15;

struct MsiRequestDecode {
  bool remappable = false;     // address bit 4 (else compatibility format)
  bool high_address = false;   // address bits 63:32 set (a reserved field)
  bool bad_head = false;       // address bits 31:20 are not 0xfee
  bool shv = false;            // subhandle valid
  bool data_reserved = false;  // SHV and data bits 31:16 set
  uint32_t handle = 0;         // 16 bits: address 19:5 and bit 2 as 15
  uint32_t index = 0;          // handle, + data[15:0] with SHV (17 bits)
};

// Decodes an interrupt request written at `address` with `data`.
inline MsiRequestDecode DecodeMsiRequest(uint64_t address, uint32_t data) {
  MsiRequestDecode d;
  d.high_address = (address >> 32) != 0;
  d.bad_head = (address & kMsiAddrHeadMask) != kMsiAddrHead;
  d.remappable = (address & kMsiAddrIf) != 0;
  d.shv = (address & kMsiAddrShv) != 0;
  d.handle = static_cast<uint32_t>((address >> kMsiAddrHandleShift) &
                                   kMsiAddrHandleMask) |
             ((address & kMsiAddrHandle15) ? 1u << 15 : 0u);
  d.index = d.handle;
  if (d.shv) {
    d.index += data & kMsiDataSubhandleMask;
    d.data_reserved = (data & ~kMsiDataSubhandleMask) != 0;
  }
  return d;
}

// One IRTE, as two little-endian quadwords (remapped format, IM = 0).
struct Irte {
  uint64_t lo = 0;  // bits 63:0
  uint64_t hi = 0;  // bits 127:64

  // Delivery-mode encodings (DLM, bits 7:5).
  static constexpr uint8_t kDlmFixed = 0;
  static constexpr uint8_t kDlmLowestPriority = 1;
  static constexpr uint8_t kDlmSmi = 2;
  static constexpr uint8_t kDlmNmi = 4;
  static constexpr uint8_t kDlmInit = 5;
  static constexpr uint8_t kDlmExtInt = 7;
  // Source validation types (SVT, bits 83:82).
  static constexpr uint8_t kSvtNone = 0;
  static constexpr uint8_t kSvtRequesterId = 1;
  static constexpr uint8_t kSvtBusRange = 2;

  bool present() const { return lo & 1; }
  bool fpd() const { return (lo >> 1) & 1; }
  bool dest_mode_logical() const { return (lo >> 2) & 1; }
  bool redirection_hint() const { return (lo >> 3) & 1; }
  bool trigger_level() const { return (lo >> 4) & 1; }
  uint8_t delivery_mode() const { return (lo >> 5) & 7; }
  bool posted() const { return (lo >> 15) & 1; }  // IM
  uint8_t vector() const { return static_cast<uint8_t>(lo >> 16); }
  uint32_t dest_id() const { return static_cast<uint32_t>(lo >> 32); }
  uint16_t sid() const { return static_cast<uint16_t>(hi); }
  uint8_t sq() const { return (hi >> 16) & 3; }
  uint8_t svt() const { return (hi >> 18) & 3; }
};
static_assert(sizeof(Irte) == 16);
static_assert(std::is_trivially_copyable_v<Irte>);

// Reserved bits of a present remapped-format IRTE without posted-interrupt
// support (ECAP.PI = 0): lo 15:12 (IM included) and 31:24; in xAPIC mode
// (IRTA.EIME = 0) also the destination bits 63:48 and 39:32; hi 63:20
// (bits 127:84).
inline constexpr uint64_t kIrteLoReserved = 0xff00'f000;
inline constexpr uint64_t kIrteLoReservedXapic = 0xffff'00ff'0000'0000;
inline constexpr uint64_t kIrteHiReserved = 0xffff'ffff'fff0'0000;

// True when a reserved field of `e` is set, or its delivery mode is one of
// the reserved encodings (3, 6).
inline bool IrteReservedBitsSet(const Irte& e, bool eime) {
  const uint8_t dlm = e.delivery_mode();
  return (e.lo & kIrteLoReserved) != 0 ||
         (!eime && (e.lo & kIrteLoReservedXapic) != 0) ||
         (e.hi & kIrteHiReserved) != 0 || dlm == 3 || dlm == 6;
}

// Requester-id verification against `sid` (SVT, SQ, SID): SVT 0 passes;
// SVT 1 compares all 16 bits, or ignores bit 2 / bits 2:1 / bits 2:0 for
// SQ 1 / 2 / 3; SVT 2 requires the bus (sid 15:8) within [SID 15:8,
// SID 7:0] (start and end bus, as the spec and Linux; QEMU 7.2 reads the
// bounds the other way round); SVT 3 (reserved) fails, as QEMU.
inline bool VerifySourceId(const Irte& e, uint16_t sid) {
  switch (e.svt()) {
    case Irte::kSvtNone:
      return true;
    case Irte::kSvtRequesterId: {
      // SQ 1..3 ignore bit 2, bits 2:1, bits 2:0 of the requester id.
      const unsigned ignored = (7u << (3 - e.sq())) & 7u;
      return ((sid ^ e.sid()) & ~ignored & 0xffffu) == 0;
    }
    case Irte::kSvtBusRange: {
      const unsigned bus = sid >> 8;
      return bus >= (e.sid() >> 8u) && bus <= (e.sid() & 0xffu);
    }
    default:
      return false;  // reserved encoding
  }
}

// The destination the IRTE names: all 32 bits in x2APIC mode (EIME), bits
// 47:40 (dest_id 15:8) in xAPIC mode.
inline uint32_t IrteDestination(const Irte& e, bool eime) {
  return eime ? e.dest_id() : (e.dest_id() >> 8) & 0xff;
}

// The compatibility-format message `e` remaps to: 0xfee in bits 31:20,
// destination 7:0 in bits 19:12 and 31:8 in bits 63:40, RH bit 3, DM bit
// 2, bits 1:0 kept from `request_address`; data vector 7:0, delivery mode
// 10:8, level-assert bit 14, trigger mode bit 15 (QEMU's
// x86_iommu_irq_to_msi_message).
inline InterruptMessage ComposeMessage(const Irte& e, bool eime,
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

#endif  // VIOMMU_HW_IOMMU_VTD_IRTE_H_
