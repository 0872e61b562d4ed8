// libFuzzer target: the input is a program of guest actions against a
// q35 machine with intel-iommu, edu (04.0) and dma-testdev (05.0): table
// writes into a small guest region, VT-d register accesses, device DMA,
// clock steps, MAP/UNMAP notifiers, system reset, and interrupt
// remapping: IRTEs, IRTA, GCMD SIRTP/IRE/CFI, IEC invalidations, and
// interrupt requests from edu's MSI, dma-testdev's DMA and raw writes of
// either device into the interrupt window.
//
// One machine per intel-iommu configuration is kept for the process and
// fully reset between inputs (machine_reuse.h: system_reset, RAM, clock);
// the replay test proves an input's trace (register reads, notifier
// mappings, registers, config spaces and RAM at the end) is the same on a
// fresh machine and after every other corpus input (fuzz_trace.h).
//
// Byte 0 picks the intel-iommu properties (bit 0 caching-mode, bit 1
// aw-bits=48, bits 2+3 both set: dma-translation=off, bit 4 pt=off, bit 5
// device-iotlb, bit 6 x-scalable-mode, bit 7 x-pasid-mode). Then each
// action is an opcode byte and its operands; missing bytes read as zero,
// at most kMaxActions run.
//
// Guest RAM layout the structured actions aim at (kRegion, 16 pages):
//   page 0 root table, page 1 context table (bus 0), pages 2..11 page
//   tables, page 12 invalidation queue, page 13 wait status, 14..15 data;
//   then the interrupt-remapping table (kIrTable, IRTEs at index * 16).
// Table writes go to slots 0..7 of a page (IOVAs are built from indexes
// 0..7 per level, so walks and DMA meet the entries written), raw writes
// anywhere in the region. Entry values mostly point back into the region.
//
// Checked (abort(), so libFuzzer reports the input): no crash, no
// sanitizer report, bounded work; every notifier sees a consistent event
// stream (MAP on free bytes, UNMAP exactly as mapped); and with
// caching-mode, after a global IOTLB invalidation issued at the end, each
// recorder agrees with a fresh walk of its device's tables
// (vtd_shadow_checker.h for the exact rule and its edge cases). Every
// action that makes interrupt requests is predicted by a reference decode
// written from the VT-d spec (vtd_ir_oracle.h: delivered as which message,
// or blocked with which fault record, allowing for the interrupt-entry
// cache) and the MSI window's record, the fault registers and the
// remapper's request count must match; after every GCMD write the unit's
// latched IRTA / IRES / CFIS must be what the guest programmed. With
// device-iotlb, both devices carry a DEVIOTLB_UNMAP notifier (refused
// without it) whose events must be well-formed, and a device-IOTLB
// descriptor submitted alone (queue opcode, device-IOTLB kind, bit 7) must
// produce exactly the event vtd_dev_iotlb_oracle.h decodes, on the SID's
// device only, or fail with IQE when 7.2's reserved bits are set.
//
// Opcodes (op % 16): 0-2 table writes, 3 raw RAM write, 4 queue
// descriptor, 5-8 register write, 9 register read, 10-11 dma-testdev DMA,
// 12 edu DMA, 13 clock step, 14 notifier (un)registration, 15 by op >> 4:
// 0, 1, 13 IRTE write; 2 IRTA; 3 GCMD SIRTP/IRE/CFI/QIE; 4, 5 IEC
// descriptor; 6-8 dma-testdev interrupt DMA; 9, 10 edu MSI; 11, 14 raw
// device write into the window; 12 IR driver setup; 15 system reset.
// (Before interrupt remapping was fuzzed, 0x0f..0xef were no-ops.)
//
// Scalable mode (byte 0 bit 6: x-scalable-mode=on; bits 6+7 without
// device-iotlb: also x-pasid-mode=on; inputs from before leave both 0):
// opcodes 0 and 1 become scalable-mode actions by their first operand's
// low 3 bits: 0 root entry (both halves, not present, reserved bits), 1-2
// 32-byte context entry (P, FPD, DTE/PASIDE/PRE, PDTS, RID_PASID, flipped
// bits), 3 PASID directory entry, 4-5 64-byte PASID entry (PGTT 0-7, AW,
// P, FPD, DID, flipped bits), 6 a translation check, 7 a driver's setup
// (tables for both devices, SRTP with TTM=01, QI with or without IQA.DW,
// TE, global invalidations); opcode 4 writes or submits 256-bit
// descriptors (context-cache, IOTLB, PASID-IOTLB, PASID-cache, wait,
// device-IOTLB, IEC, raw; upper half junk); an RTADDR write mostly sets
// TTM=01. Checked against vtd_sm_oracle.h, a reference decode of the
// scalable-mode tables written from the spec and 7.2's facts: after
// global context-cache and IOTLB invalidations, a translation (the
// IOMMU model's answer, and the fault record: reason, SID, address, T,
// PP/PV=RID_PASID for walk faults, unless FPD may suppress it) equals the
// reference's, at the check action and at the end over a grid of IOVAs;
// with caching-mode, after the final IOTLB invalidation every recorded
// mapping is a leaf of the tables (or a slot the walk skips), every leaf
// the grid reaches was notified, and nothing is mapped for a non-present
// context or PGTT pass-through; PASID-IOTLB and PASID-cache descriptors
// submitted alone run without IQE and notify nothing (7.2 ignores them).
//
// Files: vtd_fuzz_layout.h (RAM layout, devices, input), vtd_fuzz_machine.h
// (the machines and their properties), vtd_fuzz_program.h
// (the guest's class), vtd_fuzz_actions.cc (tables, registers, queue, DMA,
// notifiers), vtd_fuzz_interrupts.cc (interrupt remapping),
// vtd_fuzz_oracles.cc (end-of-input checks, trace), vtd_fuzz_scalable.cc
// (scalable mode and its checks); the oracles' reference decodes:
// vtd_shadow_checker.h, vtd_ir_oracle.h, vtd_dev_iotlb_oracle.h,
// vtd_sm_oracle.h. Seeds for scalable mode: vtd_sm_seeds.py.
// This file dispatches the actions and keeps the machines.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/vtd_fuzz_machine.h"
#include "tests/fuzz/vtd_fuzz_program.h"
#include "viommu/hw/i386/q35_machine.h"

namespace viommu::vtd::fuzz {

bool Program::Step(Input& in) {
  const uint64_t requests = IrRequestCount();
  ir_accounted_ = false;
  const bool go_on = StepAction(in);
  // Requests nobody predicted (a DMA that reached the window or a device
  // register) may have filled the interrupt-entry cache.
  if (!ir_accounted_ && IrRequestCount() != requests) ir_.ForgetCache();
  CheckIrUnit(/*tracked=*/false);
  return go_on;
}

bool Program::StepAction(Input& in) {
  const uint8_t op = in.U8();
  switch (op % 16) {
    case 0:
    case 1:
      if (scalable_) return SmTableWrite(in);
      TableWrite(in);
      return true;
    case 2:
      TableWrite(in);
      return true;
    case 3:
      RawWrite(in);
      return true;
    case 4:
      if (scalable_) {
        if (!SyncBudgetOk()) return false;  // a descriptor may run
        SmQueueWrite(in);
        return true;
      }
      QueueWrite(in);
      return true;
    case 5:
    case 6:
    case 7:
    case 8:
      // Any register write may sync every notified device.
      if (!SyncBudgetOk()) return false;
      RegWrite(in);
      return true;
    case 9:
      RegRead(in);
      return true;
    case 10:
    case 11:
      TestdevDma(in);
      return true;
    case 12:
      EduDma(in);
      return true;
    case 13:
      m_->clock().Step(int64_t{in.U8()} * 10'000'000);
      return true;
    case 14:
      if (!SyncBudgetOk()) return false;
      RegisterNotifier(in);
      return true;
    default:
      switch (op >> 4) {
        case 0:
        case 1:
        case 13:
          IrteWrite(in);
          return true;
        case 2:
          IrtaWrite(in);
          return true;
        case 3:
          if (!SyncBudgetOk()) return false;
          IrGcmd(in);
          return true;
        case 4:
        case 5:
          if (!SyncBudgetOk()) return false;
          IecSubmit(in);
          return true;
        case 6:
        case 7:
        case 8:
          TestdevIrq(in);
          return true;
        case 9:
        case 10:
          EduMsi(in);
          return true;
        case 11:
        case 14:
          RawWindowWrite(in);
          return true;
        case 12:
          if (!SyncBudgetOk()) return false;
          IrSetup(in);
          return true;
        default:
          Reset();  // rarer than the others
          return true;
      }
  }
}

}  // namespace viommu::vtd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::vtd::fuzz::Input;
  using viommu::vtd::fuzz::kMaxActions;
  using viommu::vtd::fuzz::Program;
  Input in(data, size);
  const uint8_t cfg = in.U8();
  using viommu::vtd::fuzz::AcquireMachine;
  using viommu::vtd::fuzz::IommuProperties;
  viommu::hw::Q35Machine* m = AcquireMachine(IommuProperties(cfg));
  viommu::fuzz::Trace().Clear();
  Program program(m, (cfg & 1) != 0);
  bool checked = true;
  for (int i = 0; i < kMaxActions && !in.empty(); ++i) {
    if (!program.Step(in)) {  // over the work budget: not checked
      checked = false;
      break;
    }
  }
  if (checked) program.FinalCheck();
  if (viommu::fuzz::Mode().tracing) {
    viommu::fuzz::Trace().Add64(checked);
    program.TraceEndState();
  }
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
