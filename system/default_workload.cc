// The workload `viommu run` plays when it is given no script: a tour of
// what the machine models today, with every answer checked.
#include "viommu/system/script_runner.h"

namespace viommu::system {

std::vector<std::string> DefaultWorkloadMachineArgs() {
  return {"-m",      "256M",
          "-device", "intel-iommu,id=vtd0",
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

## 6. intel-iommu: edu's DMA translated through guest page tables
# root table at 0x1000000: bus 0 -> context table at 0x1001000
writeq 0x1000000 0x1001001
# context entry of 00:04.0: present, 3-level tables at 0x1002000, domain 1
writeq 0x1001200 0x1002001
writeq 0x1001208 0x101
# IOVA 0x8000000 -> GPA 0x600000, a read/write 4 KiB page
writeq 0x1002000 0x1003003
writeq 0x1003200 0x1004003
writeq 0x1004000 0x600003
# RTADDR, then GCMD.SRTP and GCMD.TE: GSTS shows RTPS and TES
writeq 0xfed90020 0x1000000
writel 0xfed90018 0x40000000
writel 0xfed90018 0x80000000
readl 0xfed9001c
expect OK 0x00000000c0000000
# edu copies IOVA 0x8000000 into its buffer and back out to IOVA 0x8000100
write 0x600000 0x8 0x1122334455667788
writeq 0xfe000080 0x8000000
writeq 0xfe000088 0x40000
writeq 0xfe000090 0x8
writeq 0xfe000098 0x1
clock_step 100000000
writeq 0xfe000080 0x40000
writeq 0xfe000088 0x8000100
writeq 0xfe000098 0x3
clock_step 100000000
read 0x600100 0x8
expect OK 0x1122334455667788
# an IOVA without a mapping: the write is dropped and recorded in FRCD[0]:
# F, write, reason 5 (no write permission), source 00:04.0
writeq 0xfe000088 0x9000000
writeq 0xfe000098 0x3
clock_step 100000000
readq 0xfed90228
expect OK 0x80ffff0500000020
readl 0xfed90034
expect OK 0x0000000000000002

## 7. QMP: status, hot-unplug of the test device, reset
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
# the reset turned translation off again
readl 0xfed9001c
expect OK 0x0000000000000000
)";
}

}  // namespace viommu::system
