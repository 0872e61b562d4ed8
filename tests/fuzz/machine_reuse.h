// tests/fuzz/machine_reuse.h — the full reset a fuzz target does between
// inputs instead of building a new q35 machine.
//
//   hw::Q35Machine& m = ...;          // kept for the whole process
//   viommu::fuzz::ResetForReuse(m);   // before each input but the first
//
// What it clears: everything QMP system_reset clears (Q35Machine::Reset:
// every device, the VT-d unit, the reset control), plus what system_reset
// leaves on purpose and an input can observe: every function's writable
// configuration bytes that no reset rule covers (PowerOnConfigReset),
// edu's registers, DMA buffer
// and pending DMA (Edu::PowerOnReset), guest RAM (back to zero pages), the
// virtual clock (back to 0; qtest replies print it), the qtest IRQ
// interception and GSI levels, and the MSI window's record. A timer still
// armed after all that is a device whose reset is incomplete: the target
// traps, so the fuzzer reports it. replay_main.cc proves the reset
// complete on each corpus (fuzz_trace.h).
//
// Threading: control context only.
#ifndef VIOMMU_TESTS_FUZZ_MACHINE_REUSE_H_
#define VIOMMU_TESTS_FUZZ_MACHINE_REUSE_H_

#include <sys/mman.h>

#include "viommu/hw/i386/q35_machine.h"
#include "viommu/hw/misc/edu.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"

namespace viommu::fuzz {

// Zeroes guest RAM by dropping its pages (MADV_DONTNEED on the private
// anonymous mapping): cost in the pages the input touched, not in RAM size.
inline void ClearGuestRam(hw::Q35Machine& m) {
  memory::Translation t = m.system_as().Translate(0, 1, /*is_write=*/false);
  if (t.mr == nullptr || t.mr->host() == nullptr || t.offset_in_region != 0) {
    __builtin_trap();  // RAM not at GPA 0: the machine layout changed
  }
  if (madvise(t.mr->host(), m.ram_size(), MADV_DONTNEED) != 0) {
    __builtin_trap();
  }
}

inline void ResetForReuse(hw::Q35Machine& m) {
  m.Reset();
  m.pci_bus().ForEachDevice([](hw::pci::PciDevice* dev) {
    // Writable config bytes system_reset keeps (QEMU too), e.g. 0x4e-0x4f
    // of edu, just past its MSI capability (found by the qtest campaign).
    dev->PowerOnConfigReset();
    // edu keeps its registers, buffer and a pending DMA across system_reset
    // (QEMU's has no reset handler, hw/misc/edu.h): back to a new one's.
    if (dev->type_name() == "edu") {
      static_cast<hw::misc::Edu*>(dev)->PowerOnReset();
    }
  });
  m.gsi().set_observer(nullptr);
  // qtest's set_irq_in drives GSIs directly; after the reset no device
  // asserts a line, so every GSI is low as on a new machine.
  for (int gsi = 0; gsi < hw::kNumGsi; ++gsi) m.gsi().SetIrq(gsi, false);
  m.msi().Clear();  // the received-MSI record (x-query-msi)
  ClearGuestRam(m);
  if (m.clock().NextDeadline().has_value()) __builtin_trap();
  m.clock().Rewind();
}

}  // namespace viommu::fuzz

#endif  // VIOMMU_TESTS_FUZZ_MACHINE_REUSE_H_
