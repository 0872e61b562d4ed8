#include "tests/qtest/qpci.h"

namespace viommu::qtest {

uint32_t QPciDevice::Address(uint8_t off) const {
  return 0x8000'0000u | uint32_t{devfn_} << 8 | (off & 0xfc);
}

uint8_t QPciDevice::ConfigReadb(uint8_t off) {
  bus_->qts()->Outl(0xcf8, Address(off));
  return bus_->qts()->Inb(static_cast<uint16_t>(0xcfc + (off & 3)));
}
uint16_t QPciDevice::ConfigReadw(uint8_t off) {
  bus_->qts()->Outl(0xcf8, Address(off));
  return bus_->qts()->Inw(static_cast<uint16_t>(0xcfc + (off & 2)));
}
uint32_t QPciDevice::ConfigReadl(uint8_t off) {
  bus_->qts()->Outl(0xcf8, Address(off));
  return bus_->qts()->Inl(0xcfc);
}
void QPciDevice::ConfigWriteb(uint8_t off, uint8_t v) {
  bus_->qts()->Outl(0xcf8, Address(off));
  bus_->qts()->Outb(static_cast<uint16_t>(0xcfc + (off & 3)), v);
}
void QPciDevice::ConfigWritew(uint8_t off, uint16_t v) {
  bus_->qts()->Outl(0xcf8, Address(off));
  bus_->qts()->Outw(static_cast<uint16_t>(0xcfc + (off & 2)), v);
}
void QPciDevice::ConfigWritel(uint8_t off, uint32_t v) {
  bus_->qts()->Outl(0xcf8, Address(off));
  bus_->qts()->Outl(0xcfc, v);
}

void QPciDevice::Enable() {
  uint16_t cmd = ConfigReadw(0x04);
  ConfigWritew(0x04, cmd | 0x7);
}

uint64_t QPciDevice::MapBar(int bar, uint64_t* size_out) {
  const uint8_t off = static_cast<uint8_t>(0x10 + 4 * bar);
  const uint32_t orig = ConfigReadl(off);
  ConfigWritel(off, 0xffff'ffff);
  const uint32_t probe = ConfigReadl(off);
  const bool io = orig & 1;
  const bool is64 = !io && ((orig >> 1) & 3) == 2;
  uint64_t mask = io ? (probe & ~uint64_t{3}) : (probe & ~uint64_t{0xf});
  if (is64) {
    ConfigWritel(off + 4, 0xffff'ffff);
    mask |= uint64_t{ConfigReadl(off + 4)} << 32;
  } else {
    mask |= 0xffff'ffff'0000'0000ull;
  }
  if (io) mask |= 0xffff'0000ull;
  const uint64_t size = ~mask + 1;
  if (size_out != nullptr) *size_out = size;
  uint64_t addr;
  if (io) {
    addr = (bus_->next_pio_ + size - 1) & ~(size - 1);
    bus_->next_pio_ = static_cast<uint32_t>(addr + size);
  } else {
    addr = (bus_->next_mmio_ + size - 1) & ~(size - 1);
    bus_->next_mmio_ = addr + size;
  }
  ConfigWritel(off, static_cast<uint32_t>(addr));
  if (is64) ConfigWritel(off + 4, static_cast<uint32_t>(addr >> 32));
  return addr;
}

uint8_t QPciDevice::FindCapability(uint8_t id) {
  if (!(ConfigReadw(0x06) & 0x10)) return 0;
  uint8_t ptr = ConfigReadb(0x34) & 0xfc;
  for (int guard = 0; ptr != 0 && guard < 48; ++guard) {
    if (ConfigReadb(ptr) == id) return ptr;
    ptr = ConfigReadb(ptr + 1) & 0xfc;
  }
  return 0;
}

std::optional<QPciDevice> QPciBus::Find(uint16_t device_id,
                                        std::optional<uint16_t> vendor_id) {
  for (int devfn = 0; devfn < 256; ++devfn) {
    QPciDevice d(this, static_cast<uint8_t>(devfn));
    uint32_t id = d.ConfigReadl(0);
    if (id == 0xffff'ffff) continue;
    if ((id >> 16) == device_id &&
        (!vendor_id || (id & 0xffff) == *vendor_id)) {
      return d;
    }
  }
  return std::nullopt;
}

}  // namespace viommu::qtest
