#include "hw/i386/ich9_functions.h"

namespace viommu::hw {

// IDs and class codes of QEMU 7.2's ich9-lpc, ich9-ahci and ich9-smbus.
std::unique_ptr<Ich9Function> Ich9Function::Lpc() {
  return std::unique_ptr<Ich9Function>(
      new Ich9Function("ICH9-LPC", {.vendor_id = 0x8086,
                                    .device_id = 0x2918,
                                    .revision = 0x02,
                                    .class_code = 0x060100}));
}

std::unique_ptr<Ich9Function> Ich9Function::Ahci() {
  return std::unique_ptr<Ich9Function>(
      new Ich9Function("ich9-ahci", {.vendor_id = 0x8086,
                                     .device_id = 0x2922,
                                     .revision = 0x02,
                                     .class_code = 0x010601,
                                     .interrupt_pin = 1}));
}

std::unique_ptr<Ich9Function> Ich9Function::Smbus() {
  return std::unique_ptr<Ich9Function>(
      new Ich9Function("ICH9-SMB", {.vendor_id = 0x8086,
                                    .device_id = 0x2930,
                                    .revision = 0x02,
                                    .class_code = 0x0c0500,
                                    .interrupt_pin = 2}));
}

}  // namespace viommu::hw
