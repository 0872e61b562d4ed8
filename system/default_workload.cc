// The workload `viommu run` plays when it is given no script: a tour of
// what the machine models today, with every answer checked.
#include "viommu/system/script_runner.h"

namespace viommu::system {

std::vector<std::string> DefaultWorkloadMachineArgs() {
  return {"-m",      "256M",
          "-device", "edu,addr=04.0,id=edu0",
          "-device", "dma-testdev,addr=05.0,id=dma0"};
}

absl::string_view DefaultWorkload() {
  return R"(# viommu run: the default workload.
## 1. PCI enumeration through the CF8/CFC configuration ports
outl 0xcf8 0x80000000
inl 0xcfc
expect OK 0x29c08086
outl 0xcf8 0x80002000
inl 0xcfc
expect OK 0x11e81234
outl 0xcf8 0x80002800
inl 0xcfc
expect OK 0x10f01b36
outl 0xcf8 0x80003000
inl 0xcfc
expect OK 0xffffffff

## 2. edu: size BAR0, place it at 0xfe000000, enable memory + bus mastering
outl 0xcf8 0x80002010
outl 0xcfc 0xffffffff
inl 0xcfc
expect OK 0xfff00000
outl 0xcfc 0xfe000000
outl 0xcf8 0x80002004
outw 0xcfc 0x0006
readl 0xfe000000
expect OK 0x00000000010000ed
writel 0xfe000004 0x12345678
readl 0xfe000004
expect OK 0x00000000edcba987

## 3. edu factorial: 10! = 3628800 (0x375f00)
writel 0xfe000008 0xa
readl 0xfe000008
expect OK 0x0000000000375f00

## 4. edu DMA RAM -> device -> RAM, 100 ms of virtual time each way
write 0x100000 0x8 0x0123456789abcdef
writeq 0xfe000080 0x100000
writeq 0xfe000088 0x40000
writeq 0xfe000090 0x8
writeq 0xfe000098 0x1
clock_step 100000000
readq 0xfe000098
expect OK 0x0000000000000000
writeq 0xfe000080 0x40000
writeq 0xfe000088 0x200000
writeq 0xfe000098 0x3
clock_step 100000000
read 0x200000 0x8
expect OK 0x0123456789abcdef

## 5. dma-testdev: one synchronous DMA read with its MemTx result
outl 0xcf8 0x80002810
outl 0xcfc 0xfd000000
outl 0xcf8 0x80002804
outw 0xcfc 0x0006
writeq 0xfd000008 0x200000
writel 0xfd000010 0x8
writel 0xfd000018 0x1
readl 0xfd00001c
expect OK 0x0000000000000000
readq 0xfd001000
expect OK 0xefcdab8967452301
# an address with nothing behind it: decode error (2)
writeq 0xfd000008 0xf0000000
writel 0xfd000018 0x1
readl 0xfd00001c
expect OK 0x0000000000000002

## 6. QMP: status, hot-unplug of the test device, reset
qmp {"execute": "query-status"}
expect-qmp {"status": "running"}
qmp {"execute": "device_del", "arguments": {"id": "dma0"}}
expect-qmp {}
outl 0xcf8 0x80002800
inl 0xcfc
expect OK 0xffffffff
qmp {"execute": "system_reset"}
outl 0xcf8 0x80002004
inw 0xcfc
expect OK 0x0000
)";
}

}  // namespace viommu::system
