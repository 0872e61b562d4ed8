// libFuzzer target: virtio-iommu-pci's request queue, driven as a guest
// driver does, on a q35 machine (system::Vm, as build/viommu builds it)
// with `-device virtio-iommu-pci,addr=03.0`, edu at 04.0, dma-testdev at
// 05.0 and `-device vfio-pci,host=0000:01:00.0,addr=06.0` over the model
// host (its type1 container listens to the endpoint's DMA root, as QEMU
// 7.2's does).
//
// Input: byte 0 picks boot-bypass (two machines, one per value). Then up
// to kMaxActions actions, each an opcode byte and operands (missing bytes
// read as zero):
//  * driver init (status walk, a feature subset of what is offered, queue
//    sizes 256/64/16, event buffers) — also after a device or system reset;
//  * requests queued into the current batch: ATTACH/DETACH/MAP/UNMAP/PROBE
//    and unknown types with fields biased to the interesting values, laid
//    out as one descriptor or split, in an indirect table, with the
//    readable part short or longer than the payload and writable parts of
//    4, 16, 515, 516 or 600 bytes;
//  * malformed chains (loop, next outside an indirect table, head out of
//    range, zero length, readable after writable, nested indirect, bad
//    indirect length, buffer outside RAM, readable or writable part under
//    4 bytes): the device must go NEEDS_RESET and answer nothing more;
//  * notify (the batch is answered synchronously in the write);
//  * config.bypass writes (read first, as QEMU's stale config copy needs);
//  * device reset (status 0) and system_reset, each followed by re-init;
//  * dma-testdev and edu DMA through the endpoints' views;
//  * re-registering a notifier with replay; posting event buffers.
//
// Oracles (abort(), so libFuzzer reports the input), after every batch:
//  * each request gets the used entry (head, length) and status a shadow
//    model in this file predicts: domains, endpoints, mappings, config
//    bypass, following VIRTIO 1.2 §5.13 and QEMU 7.2 with the deviations
//    docs/virtio-iommu.md documents (atomic UNMAP, DEVERR for a short PROBE
//    reply, DETACH forgets the endpoint); PROBE property bytes;
//  * per endpoint (00.0, 04.0, 05.0), the mappings a MAP/UNMAP notifier
//    on its IOMMU region recorded (MAP only where nothing is recorded,
//    UNMAP exactly as mapped) equal the shadow's mappings of its domain
//    (with R or W), merged into runs;
//  * teardown (system_reset, device reset, every endpoint detached)
//    leaves every recorder empty;
//  * the host container of 06.0 (vfio-pci) holds exactly what the shadow
//    says: while 06.0 is in a translated domain, each of the domain's
//    mappings with R or W whose target lies in RAM, as IOVA -> the RAM's
//    host address (read-only without W), outside the MSI window and the
//    container's invalid IOVA ranges, and never a page in the reserved
//    MSI window 0xfee00000-0xfeefffff; all RAM identity-mapped while 06.0
//    is bypassed; nothing while it is translated with no domain (or after
//    DETACH of everything with bypass off). A container page is never
//    anything else; a shadow mapping may be missing only when the
//    container counted an error in the batch that made it (as QEMU 7.2,
//    host map failures are not reported to the guest);
//  * DMA: a DMA the shadow says translates into RAM succeeds with the
//    bytes at the predicted address; one it says faults fails, and every
//    fault record on the event queue names the endpoint and the reason
//    and flags the shadow gives for its address.
// One machine per boot-bypass value per process, reset between inputs
// (machine_reuse.h); the replay test proves each corpus input's trace
// (statuses, used entries, DMA results, fault records, recorded
// mappings, device state, guest RAM) equal on a fresh machine and after
// every other input (fuzz_trace.h).
//
// Files: virtio_iommu_fuzz_layout.h (layout, input), _shadow.h (the
// reference model), _machine.h (machine, recorders), _program.h (the
// driver's class), _requests.cc (requests and chains), _oracles.cc (the
// checks); this file drives the actions.

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "tests/fuzz/virtio_iommu_fuzz_program.h"

namespace viommu::fuzz::virtio_iommu_target {

bool Verbose() {
  static const bool verbose =
      std::getenv("VIRTIO_IOMMU_FUZZER_VERBOSE") != nullptr;
  return verbose;
}

[[noreturn]] void Fail(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr,
               "virtio_iommu_fuzzer invariant: %s (0x%" PRIx64 ", 0x%" PRIx64
               ")\n",
               what, a, b);
  std::abort();
}

void Program::SetupPci() {
  // One topology update for the seven writes (the flat views are the
  // biggest cost of an input).
  memory::MemorySystem::Transaction txn(&m().memory());
  hw::pci::PciBus& bus = m().pci_bus();
  bus.ConfigWrite(kIommuDevfn, hw::pci::kCfgBar0 + 16,
                  static_cast<uint32_t>(kVirtioBar), 4);
  bus.ConfigWrite(kIommuDevfn, hw::pci::kCfgBar0 + 20, 0, 4);
  bus.ConfigWrite(kEduDevfn, hw::pci::kCfgBar0, kEduBar, 4);
  bus.ConfigWrite(kTestDevfn, hw::pci::kCfgBar0, kTestBar, 4);
  for (uint8_t devfn : {kIommuDevfn, kEduDevfn, kTestDevfn}) {
    bus.ConfigWrite(devfn, hw::pci::kCfgCommand,
                    hw::pci::kCommandMemory | hw::pci::kCommandMaster, 2);
  }
}

// The driver's init: reset, ACK|DRIVER, features, FEATURES_OK, queues,
// DRIVER_OK, event buffers.
void Program::Init() {
  const uint8_t k = in_.U8();
  static constexpr uint16_t kSizes[4] = {256, 64, 16, 256};
  qsize_ = kSizes[k & 3];
  // Device bits: a subset of what is offered (k's high bits pick).
  const uint8_t dev = in_.U8();
  uint64_t features =
      (dev & vi::kOfferedFeatures) | uint64_t{1} << vio::kFeatureVersion1;
  if (k & 4) features |= uint64_t{1} << vio::kFeatureIndirectDesc;
  if (k & 8) features |= uint64_t{1} << vio::kFeatureEventIdx;
  if (k & 0x10) features |= uint64_t{1} << vio::kFeatureRingReset;
  bypass_config_ = features & (1u << vi::kFeatureBypassConfig);

  Mmio(kCommon + 0x14, 0, 1);  // reset
  shadow_.DeviceReset();
  broken_ = false;
  Mmio(kCommon + 0x14, vio::kStatusAcknowledge, 1);
  Mmio(kCommon + 0x14, vio::kStatusAcknowledge | vio::kStatusDriver, 1);
  Mmio(kCommon + 0x08, 0, 4);
  Mmio(kCommon + 0x0c, static_cast<uint32_t>(features), 4);
  Mmio(kCommon + 0x08, 1, 4);
  Mmio(kCommon + 0x0c, features >> 32, 4);
  const uint8_t fok =
      vio::kStatusAcknowledge | vio::kStatusDriver | vio::kStatusFeaturesOk;
  Mmio(kCommon + 0x14, fok, 1);
  if (Status() != fok) {
    Fail("FEATURES_OK refused for offered features", features, Status());
  }
  // Rings, zeroed: a previous init's entries must not look available.
  static const uint8_t zero[0x1000] = {};
  for (uint64_t a : {kReqAvail, kReqUsed, kEvtAvail, kEvtUsed}) {
    Ram(a, zero, sizeof zero);
  }
  const struct {
    uint16_t index, size;
    uint64_t desc, avail, used;
  } queues[2] = {{0, qsize_, kReqDesc, kReqAvail, kReqUsed},
                 {1, kEvtQueueSize, kEvtDesc, kEvtAvail, kEvtUsed}};
  for (const auto& q : queues) {
    Mmio(kCommon + 0x16, q.index, 2);
    Mmio(kCommon + 0x18, q.size, 2);
    Mmio(kCommon + 0x20, q.desc, 4);
    Mmio(kCommon + 0x24, 0, 4);
    Mmio(kCommon + 0x28, q.avail, 4);
    Mmio(kCommon + 0x2c, 0, 4);
    Mmio(kCommon + 0x30, q.used, 4);
    Mmio(kCommon + 0x34, 0, 4);
    Mmio(kCommon + 0x1c, 1, 2);
  }
  Mmio(kCommon + 0x14, fok | vio::kStatusDriverOk, 1);
  avail_idx_ = used_seen_ = desc_used_ = 0;
  evt_avail_ = evt_used_seen_ = 0;
  batch_.clear();
  ready_ = true;
  PostEventBuffers((k >> 5) & 7);
  Note(features);
}

void Program::PostEventBuffers(unsigned n) {
  if (!ready_) return;
  for (unsigned i = 0; i < n; ++i) {
    if (static_cast<uint16_t>(evt_avail_ - evt_used_seen_) >= kEvtQueueSize) {
      return;  // every buffer is out
    }
    const uint16_t d = evt_avail_ % kEvtQueueSize;
    Desc(kEvtDesc, d, kEvtBufs + d * 32u, vi::kFaultSize, vio::kDescFlagWrite,
         0);
    Put16(kEvtAvail + 4 + 2u * d, d);
    ++evt_avail_;
    Put16(kEvtAvail + 2, evt_avail_);
  }
  Mmio(kNotify + 4, 0, 2);  // eventq: nothing to do, must not hurt
}

void Program::WriteBypass() {
  if (!ready_) return;
  Kick();
  const uint8_t k = in_.U8();
  const uint8_t v = k & 0x80 ? k : k & 1;
  (void)Mmio(kDevCfg + 36, 1);  // refresh the function's config copy
  Mmio(kDevCfg + 36, v, 1);
  const uint8_t cur = shadow_.bypass() ? 1 : 0;
  if (v != cur) {
    if (!bypass_config_ || v > 1) {
      broken_ = true;  // DeviceError: NEEDS_RESET
    } else {
      shadow_.set_bypass(v == 1);
    }
  }
  const uint64_t got = Mmio(kDevCfg + 36, 1);
  Note(got);
  if (got != (shadow_.bypass() ? 1u : 0u)) {
    Fail("config.bypass", got, shadow_.bypass());
  }
  const uint8_t status = Status();
  if (static_cast<bool>(status & vio::kStatusNeedsReset) != broken_) {
    Fail("NEEDS_RESET after a bypass write", status, v);
  }
  // Views follow the bypass: the mappings are unchanged.
  CheckMappings();
}

void Program::DeviceReset() {
  if (ready_) Kick();
  Mmio(kCommon + 0x14, 0, 1);
  shadow_.DeviceReset();
  broken_ = false;
  ready_ = false;
  CheckMappings();  // every domain gone: nothing recorded
  for (size_t i = 0; i < kWatched.size(); ++i) {
    if (!mach_->recorder(i).blocks().empty()) {
      Fail("mappings recorded after device reset", kWatched[i], 0);
    }
  }
  Init();
}

void Program::SystemReset() {
  if (ready_) Kick();
  m().Reset();
  shadow_.SystemReset();
  broken_ = false;
  ready_ = false;
  for (size_t i = 0; i < kWatched.size(); ++i) {
    if (!mach_->recorder(i).blocks().empty()) {
      Fail("mappings recorded after system_reset", kWatched[i], 0);
    }
  }
  const uint8_t status = Status();  // BARs are gone: reads nothing
  Note(status);
  SetupPci();
  if (Status() != 0) Fail("device status after system_reset", Status(), 0);
  const uint64_t bypass = Mmio(kDevCfg + 36, 1);
  if (bypass != (mach_->boot_bypass() ? 1u : 0u)) {
    Fail("config.bypass after system_reset is not boot-bypass", bypass, 0);
  }
  Init();
}

void Program::TestdevDma() {
  const uint8_t k = in_.U8();
  const uint64_t iova = PickIova() + (k & 0x10 ? in_.U8() : 0);
  const uint32_t len = 1 + (in_.U8() & 0x3f);
  bool write = k & 1;
  const uint16_t sid = kTestDevfn;
  // Predict byte by byte.
  bool any_fault = false, all_ram = true;
  for (uint32_t i = 0; i < len; ++i) {
    const Translated t = shadow_.Translate(sid, iova + i, write);
    if (t.fault) {
      any_fault = true;
    } else if (t.phys >= kRamSize || t.phys < kDataFirst || iova + i < iova) {
      all_ram = false;
    }
  }
  if (write && !all_ram) write = false;  // never scribble outside data
  Mmio(kTestBar + kTdIova, iova, 8);
  Mmio(kTestBar + kTdLen, len, 4);
  Mmio(kTestBar + kTdOffset, 0, 4);
  if (write) {
    for (uint32_t i = 0; i < len; i += 8) {
      Mmio(kTestBar + kTdBuffer + i,
           0x1111'1111'1111'1111ull * (k >> 4 | 1) + i, 8);
    }
  }
  Mmio(kTestBar + kTdCmd, write ? 2 : 1, 4);
  const uint64_t result = Mmio(kTestBar + kTdResult, 4);
  Note(result);
  if (any_fault && result == 0) Fail("a faulting DMA succeeded", iova, len);
  if (!any_fault && all_ram) {
    if (result != 0) Fail("a mapped DMA failed", iova, result);
    for (uint32_t i = 0; i < len; ++i) {
      const Translated t = shadow_.Translate(sid, iova + i, write);
      uint8_t ram = 0;
      RamRead(t.phys, &ram, 1);
      const uint8_t dev =
          static_cast<uint8_t>(Mmio(kTestBar + kTdBuffer + i, 1));
      if (ram != dev)
        Fail("DMA bytes differ from the predicted address", iova + i, t.phys);
    }
  }
  if (ready_ && !broken_) CollectFaults(sid, write);
}

// edu reads `len` bytes at `iova` into its buffer (not visible through its
// BAR), then, when the shadow says a second IOVA translates writably into
// the data region, writes them back there: the bytes must be those at the
// predicted source.
void Program::EduDma() {
  const uint8_t k = in_.U8();
  const uint64_t iova = PickIova();
  const uint64_t iova2 = PickIova();
  const uint32_t len = 8u << (k & 7);  // 8 .. 1024
  bool any_fault = false, all_ram = true, back = true;
  for (uint32_t i = 0; i < len; ++i) {
    const Translated t = shadow_.Translate(kEduDevfn, iova + i, false);
    if (t.fault) {
      any_fault = true;
    } else if (t.phys >= kRamSize || iova + i < iova) {
      all_ram = false;
    }
    const Translated w = shadow_.Translate(kEduDevfn, iova2 + i, true);
    if (w.fault || w.phys < kDataFirst || w.phys >= kRamSize ||
        iova2 + i < iova2) {
      back = false;
    }
  }
  auto run = [&](uint64_t src, uint64_t dst, bool to_ram) {
    Mmio(kEduBar + kEduDmaSrc, src, 8);
    Mmio(kEduBar + kEduDmaDst, dst, 8);
    Mmio(kEduBar + kEduDmaCnt, len, 8);
    Mmio(kEduBar + kEduDmaCmd, to_ram ? 3 : 1, 8);
    m().clock().Step(100'000'000);
    const uint64_t cmd = Mmio(kEduBar + kEduDmaCmd, 8);
    if (cmd & 1) Fail("edu DMA still running after 100 ms", src, cmd);
  };
  run(iova, kEduBuffer, false);  // RAM -> buffer
  if (ready_ && !broken_) CollectFaults(kEduDevfn, false);
  if (!any_fault && all_ram && back) {
    // The source bytes, before the write-back can overwrite them.
    std::vector<uint8_t> want(len);
    for (uint32_t i = 0; i < len; ++i) {
      RamRead(shadow_.Translate(kEduDevfn, iova + i, false).phys, &want[i], 1);
    }
    run(kEduBuffer, iova2, true);  // buffer -> RAM
    for (uint32_t i = 0; i < len; ++i) {
      uint8_t got = 0;
      RamRead(shadow_.Translate(kEduDevfn, iova2 + i, true).phys, &got, 1);
      if (got != want[i]) Fail("edu DMA bytes differ", iova + i, iova2 + i);
    }
  }
  if (Verbose()) {
    std::fprintf(stderr,
                 "virtio_iommu_fuzzer: edu DMA 0x%" PRIx64 " -> 0x%" PRIx64
                 " len %u: %s%s%s\n",
                 iova, iova2, len, any_fault ? "fault" : "ok",
                 all_ram ? "" : " (not all RAM)", back ? ", checked" : "");
  }
}

void Program::Step() {
  const uint8_t op = in_.U8();
  switch (op % 16) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
      QueueRequest();
      return;
    case 6:
      if ((op & 0xf0) >= 0xc0)
        QueueMalformed();
      else
        QueueRequest();
      return;
    case 7:
    case 8:
      Kick();
      return;
    case 9:
      WriteBypass();
      return;
    case 10:
      if ((op & 0xf0) >= 0x80)
        DeviceReset();
      else
        Kick();
      return;
    case 11:
      if ((op & 0xf0) >= 0xc0)
        SystemReset();
      else
        Kick();
      return;
    case 12:
      Kick();
      TestdevDma();
      return;
    case 13:
      Kick();
      EduDma();
      return;
    case 14: {
      Kick();
      const uint8_t i = in_.U8();
      mach_->Register(i % kWatched.size());  // fresh recorder, replayed
      CheckMappings();
      return;
    }
    default:
      PostEventBuffers(1 + (in_.U8() & 7));
      return;
  }
}

void Program::Finish() {
  Kick();
  if (!tracing_) return;
  Note(shadow_.domain_count());
  Note(mach_->iommu().bypass());
  vio::VirtioPciFunction* fn = mach_->function();
  // Not config_generation: it survives system_reset (as QEMU 7.2's
  // VirtIODevice.generation) and no action reads it.
  Note(fn->isr());
  Note(fn->device_status());
  Note(m().clock().now_ns());
  static uint8_t page[4096];
  for (uint64_t gpa = 0; gpa < kRamSize; gpa += sizeof page) {
    RamRead(gpa, page, sizeof page);
    Trace().Add(page, sizeof page);
  }
}

}  // namespace viommu::fuzz::virtio_iommu_target

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace t = viommu::fuzz::virtio_iommu_target;
  t::Input in(data, size);
  const bool boot_bypass = !(in.U8() & 1);
  static std::unique_ptr<t::Machine> machines[2];
  std::unique_ptr<t::Machine>& m = machines[boot_bypass ? 1 : 0];
  if (m != nullptr && viommu::fuzz::Mode().fresh) m.reset();
  if (m == nullptr) {
    m = std::make_unique<t::Machine>(boot_bypass);
  } else {
    m->ResetForReuse();
  }
  viommu::fuzz::Trace().Clear();
  t::Program program(m.get(), &in);
  program.Start();
  for (int i = 0; i < t::kMaxActions && !in.empty(); ++i) program.Step();
  program.Finish();
  return 0;
}

VIOMMU_FUZZ_TRACE_HOOKS()
