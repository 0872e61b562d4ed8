// tests/qtest/qpci.h — libqos-style PCI helpers over a QtestClient: config
// access through CF8/CFC, device lookup, BAR mapping and enabling.
//
//   QPciBus bus(qts);
//   QPciDevice dev = *bus.Find(0x11e8);        // edu
//   dev.Enable();                               // IO | MEMORY | MASTER
//   uint64_t bar0 = dev.MapBar(0);             // from 0xe0000000 up
//   qts->Readl(bar0);
#ifndef VIOMMU_TESTS_QTEST_QPCI_H_
#define VIOMMU_TESTS_QTEST_QPCI_H_

#include <cstdint>
#include <optional>

#include "tests/qtest/qtest_client.h"

namespace viommu::qtest {

class QPciBus;

class QPciDevice {
 public:
  QPciDevice(QPciBus* bus, uint8_t devfn) : bus_(bus), devfn_(devfn) {}

  uint8_t devfn() const { return devfn_; }
  uint8_t ConfigReadb(uint8_t off);
  uint16_t ConfigReadw(uint8_t off);
  uint32_t ConfigReadl(uint8_t off);
  void ConfigWriteb(uint8_t off, uint8_t v);
  void ConfigWritew(uint8_t off, uint16_t v);
  void ConfigWritel(uint8_t off, uint32_t v);

  // Sets IO, MEMORY and MASTER in the command register.
  void Enable();
  // Sizes BAR `bar`, places it at the next free naturally aligned address
  // (memory from 0xe0000000, I/O from 0xc000) and returns that address.
  uint64_t MapBar(int bar, uint64_t* size = nullptr);
  // Offset of the first capability with `id`, or 0.
  uint8_t FindCapability(uint8_t id);

 private:
  uint32_t Address(uint8_t off) const;
  QPciBus* bus_;
  uint8_t devfn_;
};

class QPciBus {
 public:
  explicit QPciBus(QtestClient* qts) : qts_(qts) {}
  QtestClient* qts() { return qts_; }
  // The first function on bus 0 with `device_id` (and vendor, if given).
  std::optional<QPciDevice> Find(uint16_t device_id,
                                 std::optional<uint16_t> vendor_id = {});

 private:
  friend class QPciDevice;
  QtestClient* qts_;
  uint64_t next_mmio_ = 0xe000'0000;
  uint32_t next_pio_ = 0xc000;
};

}  // namespace viommu::qtest

#endif  // VIOMMU_TESTS_QTEST_QPCI_H_
