// libFuzzer target: the guest-facing vfio-pci device (VfioPciDevice) over
// the model host (ModelHost, its simulated edu at 0000:01:00.0), plugged at
// 04.0 of a q35 machine as build/viommu does for
// `-device vfio-pci,host=0000:01:00.0,addr=04.0` (model host by default).
//
// The input is a program of guest actions; each is an opcode byte and its
// operands (missing bytes read as zero, at most kMaxActions run): config
// reads/writes of 1, 2 and 4 bytes at any offset (biased to COMMAND, the
// BARs, the MSI capability, INTx line/pin), BAR sizing, BAR placement and
// decoding, BAR0 accesses (pread/pwrite on the device fd) of every width,
// BAR2 accesses (the mmap'd ram_device region), MSI programming, edu DMA
// kicks and interrupt raise/ack, clock steps, device reset and
// system_reset.
//
// Oracles (abort(), so libFuzzer reports the input):
//  * emulated config reads: IDs, revision/class, header type, subsystem
//    ids, ROM (0), capability pointer, interrupt pin and the MSI
//    capability's id byte always read as on the new machine; BAR sizing
//    (all-ones write) reads the size mask measured on the new machine; a
//    2-byte COMMAND write reads back as its writable bits over the fixed
//    ones;
//  * the host's config space (read directly from the model device) after
//    the program differs from the new machine's only where a guest may
//    reach it: COMMAND and STATUS, the host-owned MSI enable bit. The host
//    BARs and MSI address/data are never guest-written;
//  * the device keeps working: after the program, system_reset, then BARs,
//    memory decoding and bus mastering, the edu ID register and an edu DMA
//    round trip through guest RAM land as programmed.
// One machine per process, reset between inputs (machine_reuse.h, and the
// host edu's BAR2 memory zeroed: device memory no reset clears); the
// replay test proves each corpus input's trace (every value read, MSI
// and INTx state, host config, guest RAM) is the same on a fresh machine
// and after every other input (fuzz_trace.h).
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/machine_reuse.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/system/vfio/vfio_pci_device.h"
#include "viommu/system/vm.h"
#include "viommu/vfio/host/host_platform.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"
#include "viommu/vfio/host/vfio_uapi.h"

namespace viommu::fuzz::vfio_pci {
namespace {

constexpr uint8_t kDevfn = 0x20;  // 04.0
constexpr uint64_t kBar0 = 0xfe00'0000;
constexpr uint64_t kBar2 = 0xe000'0000;
constexpr uint64_t kBar0Size = 1 << 20;
constexpr int kMaxActions = 128;
constexpr int64_t kDmaDelayNs = 100'000'000;
// edu registers (BAR0) and its DMA buffer.
constexpr uint64_t kEduId = 0x00, kEduIrqRaise = 0x60, kEduIrqAck = 0x64,
                   kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCnt = 0x90,
                   kDmaCmd = 0x98, kEduBuffer = 0x40000;
constexpr uint64_t kCmdStart = 1, kCmdToRam = 2, kCmdIrq = 4;
constexpr uint32_t kEduIdValue = 0x010000ed;

[[noreturn]] void Fail(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr,
               "vfio_pci_fuzzer invariant: %s (0x%" PRIx64 ", 0x%" PRIx64 ")\n",
               what, a, b);
  std::abort();
}

using Input = ::viommu::fuzz::FuzzInput;

// What a new machine shows, measured once per machine.
struct Baseline {
  uint8_t guest[256] = {};  // the guest's config view
  uint8_t host[256] = {};   // the model device's own config space
  uint32_t bar_mask[6] = {};
  uint16_t command_writable = 0;
  uint8_t msi_cap = 0;
};

class Machine {
 public:
  // Builds the VM; traps when it cannot (the setup is fixed).
  static std::unique_ptr<Machine> Create();

  system::Vm& vm() { return *vm_; }
  hw::pci::PciBus& bus() { return vm_->machine().pci_bus(); }
  const Baseline& base() const { return base_; }
  // The full reset between inputs: machine_reuse.h, and the host device's
  // BAR2 memory, which no reset clears (device memory; QEMU's system_reset
  // keeps it too) and the next input could read.
  void ResetForReuse() {
    fuzz::ResetForReuse(vm_->machine());
    std::memset(host_->bar2(), 0, host_->bar2_size());
  }
  void HostConfig(uint8_t out[256]) {
    if (host_->RegionRead(
            vfio::uapi::PciIndexToOffset(vfio::uapi::kPciConfigRegionIndex),
            out, 256) != 256) {
      Fail("host config region unreadable", 0, 0);
    }
  }

 private:
  void Measure();

  std::unique_ptr<system::Vm> vm_;
  vfio::model::ModelHostDevice* host_ = nullptr;  // not owned (the VM's)
  Baseline base_;
};

std::unique_ptr<Machine> Machine::Create() {
  system::VmConfig config;
  config.ram_size = 16 << 20;
  config.devices.push_back(
      {.head = "vfio-pci",
       .props = {{"host", "0000:01:00.0"}, {"addr", "04.0"}}});
  auto vm = system::Vm::Create(config);
  if (!vm.ok()) {
    std::fprintf(stderr, "%s\n", vm.status().ToString().c_str());
    __builtin_trap();
  }
  auto m = std::make_unique<Machine>();
  m->vm_ = *std::move(vm);
  vfio::model::ModelHost* host = m->vm_->vfio().model_host();
  auto addr = vfio::HostPciAddress::Parse("0000:01:00.0");
  if (host == nullptr || !addr.ok()) __builtin_trap();
  // system/vfio_passthrough.cc gives the model host ModelHostDevice's
  // factory, so every device of it is one.
  m->host_ = static_cast<vfio::model::ModelHostDevice*>(host->device(*addr));
  if (m->host_ == nullptr || m->host_->bar2() == nullptr) __builtin_trap();
  m->Measure();
  return m;
}

void Machine::Measure() {
  for (uint32_t off = 0; off < 256; off += 4) {
    const uint32_t v = bus().ConfigRead(kDevfn, off, 4);
    std::memcpy(&base_.guest[off], &v, 4);
  }
  HostConfig(base_.host);
  for (int i = 0; i < 6; ++i) {
    const uint32_t off = hw::pci::kCfgBar0 + 4 * i;
    const uint32_t old = bus().ConfigRead(kDevfn, off, 4);
    bus().ConfigWrite(kDevfn, off, 0xffff'ffff, 4);
    base_.bar_mask[i] = bus().ConfigRead(kDevfn, off, 4);
    bus().ConfigWrite(kDevfn, off, old, 4);
  }
  const uint32_t cmd = bus().ConfigRead(kDevfn, hw::pci::kCfgCommand, 2);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgCommand, 0xffff, 2);
  base_.command_writable = static_cast<uint16_t>(
      bus().ConfigRead(kDevfn, hw::pci::kCfgCommand, 2) ^ cmd);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgCommand, cmd, 2);
  vm_->SystemReset();  // as new, also at the host
  base_.msi_cap = base_.guest[hw::pci::kCfgCapabilityList];
}

// True for guest config bytes that never change (see the file comment).
bool ConstantByte(const Baseline& b, uint32_t off) {
  if (off < 4 || (off >= 0x08 && off < 0x0c) || off == 0x0e) return true;
  if (off >= 0x2c && off < 0x34) return true;  // subsystem ids, ROM
  if (off == hw::pci::kCfgCapabilityList || off == 0x3d) return true;
  return b.msi_cap != 0 && off == b.msi_cap;
}

class Program {
 public:
  explicit Program(Machine* m) : m_(m), tracing_(Mode().tracing) {}

  void Step(Input& in);
  // The host-config oracle, then system_reset and the known-good sequence.
  void FinalCheck();

 private:
  hw::pci::PciBus& bus() { return m_->bus(); }
  void Note(uint64_t a, uint64_t b) {
    if (tracing_) {
      Trace().Add64(a);
      Trace().Add64(b);
    }
  }
  uint64_t MemRead(uint64_t addr, unsigned size) {
    uint64_t v = 0;
    m_->vm().MemRead(addr, &v, size);
    return v;
  }
  void MemWrite(uint64_t addr, uint64_t v, unsigned size) {
    m_->vm().MemWrite(addr, &v, size);
  }
  static unsigned PickSize(uint8_t k) {
    static constexpr unsigned kSizes[4] = {1, 2, 4, 4};
    return kSizes[k & 3];
  }
  uint32_t PickConfigOffset(Input& in, unsigned size);
  void ConfigWrite(Input& in);
  void ConfigRead(Input& in);
  void BarSizing(Input& in);
  void PlaceBars(Input& in);
  void Bar0Access(Input& in);
  void Bar2Access(Input& in);
  void ProgramMsi(Input& in);
  void EduDma(Input& in);
  void KnownGood();

  Machine* m_;  // not owned, outlives this
  const bool tracing_;
};

uint32_t Program::PickConfigOffset(Input& in, unsigned size) {
  const uint8_t k = in.U8();
  uint32_t off;
  switch (k >> 5) {
    case 0:
      off = hw::pci::kCfgCommand + (k & 3);
      break;
    case 1:
      off = hw::pci::kCfgBar0 + (k & 0x1f);
      break;
    case 2:
    case 3:
      off = m_->base().msi_cap + (k & 0x0f);
      break;
    case 4:
      off = 0x3c + (k & 3);
      break;
    default:
      off = in.U8();
      break;
  }
  off &= ~(size - 1);  // the guest's config mechanism aligns
  return off & 0xff;
}

void Program::ConfigWrite(Input& in) {
  const uint8_t k = in.U8();
  const unsigned size = PickSize(k);
  const uint32_t off = PickConfigOffset(in, size);
  const uint32_t v = (k & 4) ? in.U32() : in.U8();
  bus().ConfigWrite(kDevfn, off, v, size);
  if (off == hw::pci::kCfgCommand && size == 2) {
    const Baseline& b = m_->base();
    const uint32_t want =
        (v & b.command_writable) | ((b.guest[hw::pci::kCfgCommand] |
                                     b.guest[hw::pci::kCfgCommand + 1] << 8) &
                                    ~b.command_writable);
    const uint32_t got = bus().ConfigRead(kDevfn, off, 2);
    if (got != want) Fail("COMMAND reads back other than written", v, got);
  }
}

void Program::ConfigRead(Input& in) {
  const uint8_t k = in.U8();
  const unsigned size = PickSize(k);
  const uint32_t off = PickConfigOffset(in, size);
  const uint32_t v = bus().ConfigRead(kDevfn, off, size);
  Note(off, v);
  const Baseline& b = m_->base();
  for (unsigned i = 0; i < size; ++i) {
    const uint8_t byte = static_cast<uint8_t>(v >> (8 * i));
    if (ConstantByte(b, off + i) && byte != b.guest[off + i]) {
      Fail("an emulated read-only config byte changed", off + i, byte);
    }
  }
}

void Program::BarSizing(Input& in) {
  const uint8_t k = in.U8();
  const int i = k % 6;
  const uint32_t off = hw::pci::kCfgBar0 + 4 * i;
  const uint32_t old = bus().ConfigRead(kDevfn, off, 4);
  bus().ConfigWrite(kDevfn, off, 0xffff'ffff, 4);
  const uint32_t mask = bus().ConfigRead(kDevfn, off, 4);
  if (mask != m_->base().bar_mask[i]) {
    Fail("BAR sizing reads another mask", i, mask);
  }
  if (!(k & 0x80)) bus().ConfigWrite(kDevfn, off, old, 4);
}

void Program::PlaceBars(Input& in) {
  const uint8_t k = in.U8();
  bus().ConfigWrite(kDevfn, hw::pci::kCfgBar0,
                    static_cast<uint32_t>(k & 1 ? kBar0 : in.U32()), 4);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgBar0 + 8,
                    static_cast<uint32_t>(k & 2 ? kBar2 : in.U32()), 4);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgBar0 + 12, k & 4 ? 0 : in.U32(), 4);
  uint16_t cmd = hw::pci::kCommandMemory;
  if (k & 8) cmd |= hw::pci::kCommandMaster;
  if (k & 0x10) cmd |= hw::pci::kCommandIntxDisable;
  if (k & 0x20) cmd = 0;
  bus().ConfigWrite(kDevfn, hw::pci::kCfgCommand, cmd, 2);
}

void Program::Bar0Access(Input& in) {
  const uint8_t k = in.U8();
  static constexpr unsigned kSizes[4] = {1, 2, 4, 8};
  const unsigned size = kSizes[k & 3];
  uint64_t off;
  switch ((k >> 2) & 3) {
    case 0:
    case 1:
      off = (in.U8() & 0x3f) * 4;  // the edu registers
      break;
    case 2:
      off = kEduBuffer + (in.U16() & 0xfff);
      break;
    default:
      off = in.U32() % kBar0Size;
      break;
  }
  const uint64_t addr = kBar0 + off;
  if (k & 0x10) {
    MemWrite(addr, in.U64(), size);
  } else {
    Note(addr, MemRead(addr, size));
  }
}

void Program::Bar2Access(Input& in) {
  const uint8_t k = in.U8();
  static constexpr unsigned kSizes[4] = {1, 2, 4, 8};
  const unsigned size = kSizes[k & 3];
  const uint64_t addr = kBar2 + (in.U32() & 0xfffff);
  if (k & 0x10) {
    MemWrite(addr, in.U64(), size);
  } else {
    Note(addr, MemRead(addr, size));
  }
}

void Program::ProgramMsi(Input& in) {
  const uint8_t cap = m_->base().msi_cap;
  if (cap == 0) return;
  const uint8_t k = in.U8();
  bus().ConfigWrite(kDevfn, cap + 4,
                    k & 1 ? 0xfee0'0000u | uint32_t{in.U8()} << 12 : in.U32(),
                    4);
  bus().ConfigWrite(kDevfn, cap + 8, k & 2 ? 0 : in.U32(), 4);
  bus().ConfigWrite(kDevfn, cap + 12, in.U16(), 2);
  bus().ConfigWrite(kDevfn, cap + 2, k & 4 ? 1 : in.U16(), 2);
}

void Program::EduDma(Input& in) {
  const uint8_t k = in.U8();
  const uint64_t ram = k & 1 ? uint64_t{in.U16()} << 4 : in.U64();
  const uint64_t count = k & 2 ? 8 : in.U16();
  const bool to_ram = k & 4;
  MemWrite(kBar0 + kDmaSrc, to_ram ? kEduBuffer + (k >> 5) : ram, 8);
  MemWrite(kBar0 + kDmaDst, to_ram ? ram : kEduBuffer + (k >> 5), 8);
  MemWrite(kBar0 + kDmaCnt, count, 8);
  MemWrite(kBar0 + kDmaCmd,
           kCmdStart | (to_ram ? kCmdToRam : 0) | (k & 8 ? kCmdIrq : 0), 8);
  if (k & 0x10) m_->vm().ClockStep(kDmaDelayNs);
}

void Program::Step(Input& in) {
  const uint8_t op = in.U8();
  switch (op % 16) {
    case 0:
    case 1:
    case 2:
      ConfigWrite(in);
      return;
    case 3:
    case 4:
      ConfigRead(in);
      return;
    case 5:
      BarSizing(in);
      return;
    case 6:
      PlaceBars(in);
      return;
    case 7:
    case 8:
      Bar0Access(in);
      return;
    case 9:
      Bar2Access(in);
      return;
    case 10:
      ProgramMsi(in);
      return;
    case 11:
      EduDma(in);
      return;
    case 12: {  // edu interrupt raise / ack
      const uint8_t k = in.U8();
      MemWrite(kBar0 + (k & 1 ? kEduIrqAck : kEduIrqRaise), in.U8() | 1, 4);
      return;
    }
    case 13:
      m_->vm().ClockStep(int64_t{in.U8()} * 10'000'000);
      return;
    case 14: {
      system::Vm& vm = m_->vm();
      hw::pci::PciDevice* dev = bus().Find(kDevfn);
      if (dev == nullptr) Fail("the device went away", 0, 0);
      dev->Reset();  // a function-level reset
      vm.PollInterrupts();
      return;
    }
    default:
      if ((op & 0xf0) == 0xf0) m_->vm().SystemReset();
      return;
  }
}

void Program::KnownGood() {
  bus().ConfigWrite(kDevfn, hw::pci::kCfgBar0, static_cast<uint32_t>(kBar0), 4);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgBar0 + 8, static_cast<uint32_t>(kBar2),
                    4);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgBar0 + 12, 0, 4);
  bus().ConfigWrite(kDevfn, hw::pci::kCfgCommand,
                    hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2);
  const uint64_t id = MemRead(kBar0 + kEduId, 4);
  if (id != kEduIdValue) Fail("edu ID after reset", id, kEduIdValue);
  constexpr uint64_t kSrc = 0x1'0000, kDst = 0x2'0000;
  constexpr uint64_t kPattern = 0x0123'4567'89ab'cdefull;
  MemWrite(kSrc, kPattern, 8);
  MemWrite(kDst, 0, 8);
  for (const bool to_ram : {false, true}) {
    MemWrite(kBar0 + kDmaSrc, to_ram ? kEduBuffer : kSrc, 8);
    MemWrite(kBar0 + kDmaDst, to_ram ? kDst : kEduBuffer, 8);
    MemWrite(kBar0 + kDmaCnt, 8, 8);
    MemWrite(kBar0 + kDmaCmd, kCmdStart | (to_ram ? kCmdToRam : 0), 8);
    m_->vm().ClockStep(kDmaDelayNs);
  }
  const uint64_t got = MemRead(kDst, 8);
  if (got != kPattern) Fail("edu DMA after reset did not land", got, kDst);
  const uint64_t bar2 = MemRead(kBar2, 8);
  MemWrite(kBar2, ~bar2, 8);
  if (MemRead(kBar2, 8) != ~bar2) Fail("BAR2 not writable after reset", 0, 0);
}

void Program::FinalCheck() {
  system::Vm& vm = m_->vm();
  vm.PollInterrupts();
  const Baseline& b = m_->base();
  uint8_t host[256];
  m_->HostConfig(host);
  for (uint32_t off = 0; off < 256; ++off) {
    if (off >= hw::pci::kCfgCommand && off < hw::pci::kCfgCommand + 4) {
      continue;  // COMMAND (guest-written), STATUS (the device's)
    }
    uint8_t allowed = 0;
    if (b.msi_cap != 0 && off == b.msi_cap + 2u) allowed = 1;  // MSI enable
    if ((host[off] ^ b.host[off]) & ~allowed) {
      Fail("host config byte changed by the guest", off, host[off]);
    }
  }
  if (tracing_) {
    Trace().Add(host, sizeof host);
    hw::Q35Machine& m = vm.machine();
    Trace().Add64(m.msi().TotalCount());
    if (auto last = m.msi().Last(kDevfn); last.has_value()) {
      Trace().Add64(last->address);
      Trace().Add64(last->data);
    }
    for (int gsi = 0; gsi < hw::kNumGsi; ++gsi)
      Trace().Add64(m.gsi().level(gsi));
    Trace().Add64(m.clock().now_ns());
  }
  vm.SystemReset();
  vm.PollInterrupts();
  m_->HostConfig(host);
  const uint16_t host_cmd = static_cast<uint16_t>(
      host[hw::pci::kCfgCommand] | host[hw::pci::kCfgCommand + 1] << 8);
  if (host_cmd & (hw::pci::kCommandIo | hw::pci::kCommandMemory |
                  hw::pci::kCommandMaster)) {
    Fail("host COMMAND decodes after system_reset", host_cmd, 0);
  }
  KnownGood();
  if (tracing_) {
    hw::Q35Machine& m = vm.machine();
    static uint8_t page[4096];
    for (uint64_t gpa = 0; gpa < m.ram_size(); gpa += sizeof page) {
      (void)m.system_as().Read(gpa, page, sizeof page);
      Trace().Add(page, sizeof page);
    }
  }
}

}  // namespace
}  // namespace viommu::fuzz::vfio_pci

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using viommu::fuzz::vfio_pci::Machine;
  static std::unique_ptr<Machine> machine;
  if (machine != nullptr && viommu::fuzz::Mode().fresh) machine.reset();
  if (machine == nullptr) {
    machine = Machine::Create();
  } else {
    machine->ResetForReuse();
  }
  viommu::fuzz::Trace().Clear();
  viommu::fuzz::vfio_pci::Input in(data, size);
  viommu::fuzz::vfio_pci::Program program(machine.get());
  for (int i = 0; i < viommu::fuzz::vfio_pci::kMaxActions && !in.empty(); ++i) {
    program.Step(in);
  }
  program.FinalCheck();
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
