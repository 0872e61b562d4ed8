// The virtio_iommu fuzz target's guest driver: one input's actions on a
// Machine, checked against the Shadow. Its members are defined in
// virtio_iommu_fuzzer.cc (driver), virtio_iommu_fuzz_requests.cc (request
// and chain building) and virtio_iommu_fuzz_oracles.cc (answer, mapping,
// container and fault checks).
#ifndef VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_PROGRAM_H_
#define VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_PROGRAM_H_

#include "tests/fuzz/fuzz_trace.h"
#include "tests/fuzz/virtio_iommu_fuzz_machine.h"
#include "tests/fuzz/virtio_iommu_fuzz_shadow.h"
#include "viommu/hw/pci/pci_regs.h"

namespace viommu::fuzz::virtio_iommu_target {

// One queued request and what the shadow predicts for it.
struct Pending {
  uint16_t head = 0;
  bool malformed = false;
  uint64_t in_addr[2] = {0, 0};  // the writable segments
  uint32_t in_len[2] = {0, 0};
  std::vector<uint8_t> out;  // the readable bytes (at most 72 looked at)
  uint64_t in_size = 0;
};

class Program {
 public:
  Program(Machine* m, Input* in)
      : mach_(m),
        in_(*in),
        shadow_(m->boot_bypass()),
        tracing_(Mode().tracing) {
    shadow_.SetKnown(m->known());
    // The host facts as the container reads them (not as the device
    // holds them): its valid ranges and smallest page.
    const vfio::VfioContainer* c = m->container();
    const uint64_t pages = c->page_size_mask();
    shadow_.SetHost(kVfioDevfn, c->iova_ranges(), pages & (~pages + 1));
  }

  // PCI setup and the driver's init (reads its choices from the input).
  void Start() {
    SetupPci();
    Init();
  }
  void Step();
  void Finish();

 private:
  hw::Q35Machine& m() { return mach_->m(); }
  void Note(uint64_t v) {
    if (tracing_) Trace().Add64(v);
  }
  uint64_t Mmio(uint64_t addr, unsigned size) {
    uint64_t v = 0;
    (void)m().system_as().Read(addr, &v, size);
    return v;
  }
  void Mmio(uint64_t addr, uint64_t v, unsigned size) {
    (void)m().system_as().Write(addr, &v, size);
  }
  void Ram(uint64_t addr, const void* p, size_t n) {
    (void)m().system_as().Write(addr, p, n);
  }
  void RamRead(uint64_t addr, void* p, size_t n) {
    (void)m().system_as().Read(addr, p, n);
  }
  void Put16(uint64_t addr, uint16_t v) { Ram(addr, &v, 2); }
  uint16_t Get16(uint64_t addr) {
    uint16_t v = 0;
    RamRead(addr, &v, 2);
    return v;
  }
  uint32_t Get32(uint64_t addr) {
    uint32_t v = 0;
    RamRead(addr, &v, 4);
    return v;
  }
  void Desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
            uint16_t flags, uint16_t next) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    Ram(table + uint64_t{i} * 16, d, 16);
  }
  uint8_t Status() { return static_cast<uint8_t>(Mmio(kCommon + 0x14, 1)); }

  void SetupPci();
  void Init();
  void QueueRequest();
  void QueueMalformed();
  void Kick();
  void WriteBypass();
  void DeviceReset();
  void SystemReset();
  void TestdevDma();
  void EduDma();
  void PostEventBuffers(unsigned n);
  void CollectFaults(uint16_t sid, bool write);
  void CheckMappings();
  void CheckContainer();
  uint64_t ContainerErrors() {
    const vfio::ContainerStats& st = mach_->container()->stats();
    return st.errors + st.map_errors + st.unmap_errors + st.warnings;
  }
  uint64_t PickIova();
  void BuildRequest(std::vector<uint8_t>* out);
  // Descriptors for the next chain: `n` free slots, or nullopt when the
  // batch must be kicked first.
  bool Room(unsigned n) const {
    return batch_.size() < kMaxBatch && desc_used_ + n <= qsize_;
  }

  Machine* mach_;
  Input& in_;
  Shadow shadow_;
  const bool tracing_;
  bool ready_ = false;   // driver initialised (DRIVER_OK)
  bool broken_ = false;  // shadow: NEEDS_RESET, nothing processed
  bool bypass_config_ = false;
  uint16_t qsize_ = 256;
  uint16_t avail_idx_ = 0;
  uint16_t used_seen_ = 0;
  uint16_t desc_used_ = 0;  // descriptors taken by the current batch
  uint16_t evt_avail_ = 0;
  uint16_t evt_used_seen_ = 0;
  std::vector<Pending> batch_;
  uint64_t last_iova_ = 0x10'0000;  // biases IOVAs to the last mapping
  uint64_t last_size_ = 0x1000;
};

}  // namespace viommu::fuzz::virtio_iommu_target

#endif  // VIOMMU_TESTS_FUZZ_VIRTIO_IOMMU_FUZZ_PROGRAM_H_
