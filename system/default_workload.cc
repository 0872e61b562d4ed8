// The workload `viommu run` plays when it is given no script: a tour of
// what the machine models today, with every answer checked.
#include "viommu/system/script_runner.h"

namespace viommu::system {

std::vector<std::string> DefaultWorkloadMachineArgs() {
  // caching-mode=on: VT-d refuses passthrough devices without it.
  return {"-m",      "256M",
          "-device", "intel-iommu,caching-mode=on,id=vtd0",
          "-device", "edu,addr=04.0,id=edu0",
          "-device", "dma-testdev,addr=05.0,id=dma0",
          "-device", "vfio-pci,host=0000:01:00.0,addr=06.0,id=vfio0"};
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
# 00:06.0: the passthrough host edu (vfio-pci 0000:01:00.0)
outl 0xcf8 0x80003000
inl 0xcfc
expect OK 0x11e81234
# 00:07.0: nothing there
outl 0xcf8 0x80003800
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

## 7. vfio-pci: the host's edu 0000:01:00.0 at 00:06.0, DMA through VT-d
# DMAR is on and 00:06.0 has no context entry yet: its container maps nothing
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 0, "dma-avail": 65535, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
# context entry of 00:06.0: present, 3-level tables at 0x1005000, domain 2
writeq 0x1001300 0x1005001
writeq 0x1001308 0x201
# IOVA 0x8000000 -> GPA 0x700000, a read/write 4 KiB page
writeq 0x1005000 0x1006003
writeq 0x1006200 0x1007003
writeq 0x1007000 0x700003
# caching mode: the new context entry needs a context-cache invalidation
# (CCMD.ICC, global); VT-d replays the tables into the host container
writeq 0xfed90028 0xa000000000000000
readq 0xfed90028
expect OK 0x2800000000000000
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 1, "dma-avail": 65534, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
# a second page, IOVA 0x8001000 -> GPA 0x701000, then a page-selective
# IOTLB invalidation of it (IVA, then IOTLB.IVT, domain 2)
writeq 0x1007008 0x701003
writeq 0xfed900f0 0x8001000
writeq 0xfed900f8 0xb000000200000000
readq 0xfed900f8
expect OK 0x3600000200000000
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 2, "dma-avail": 65533, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
# BAR0 of 00:06.0 (the host edu's registers, 1 MiB) at 0xfe100000,
# memory + bus mastering
outl 0xcf8 0x80003010
outl 0xcfc 0xffffffff
inl 0xcfc
expect OK 0xfff00000
outl 0xcfc 0xfe100000
outl 0xcf8 0x80003004
outw 0xcfc 0x0006
readl 0xfe100000
expect OK 0x00000000010000ed
# the host device copies IOVA 0x8000000 into its buffer and back out to
# IOVA 0x8001000; the host IOMMU translates with the replayed mappings
write 0x700000 0x8 0xfeedfacecafef00d
writeq 0xfe100080 0x8000000
writeq 0xfe100088 0x40000
writeq 0xfe100090 0x8
writeq 0xfe100098 0x1
clock_step 100000000
readq 0xfe100098
expect OK 0x0000000000000000
writeq 0xfe100080 0x40000
writeq 0xfe100088 0x8001000
writeq 0xfe100098 0x3
clock_step 100000000
read 0x701000 0x8
expect OK 0xfeedfacecafef00d
# an IOVA the guest never mapped (0x8002000): the host IOMMU blocks the
# write and counts a fault against 0000:01:00.0
writeq 0xfe100088 0x8002000
writeq 0xfe100098 0x3
clock_step 100000000
read 0x702000 0x8
expect OK 0x0000000000000000
qmp {"execute": "x-debug-vfio-host"}
expect-qmp {"host-mappings": 2, "errors": 0, "devices": [{"host": "0000:01:00.0", "dma-completed": 2, "iommu-faults": 1, "last-fault-iova": 134225920}, {"host": "0000:02:00.0", "dma-completed": 0, "iommu-faults": 0, "last-fault-iova": -1}, {"host": "0000:03:00.0", "dma-completed": 0, "iommu-faults": 0, "last-fault-iova": -1}]}

## 8. vfio-pci hot-plug of 0000:02:00.0 at 00:07.0 and its unplug
qmp {"execute": "device_add", "arguments": {"driver": "vfio-pci", "host": "0000:02:00.0", "id": "hp", "addr": "07.0"}}
expect-qmp {}
outl 0xcf8 0x80003800
inl 0xcfc
expect OK 0x11e81234
# behind VT-d each device has its own address space, so a second container
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 2, "dma-avail": 65533, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}, {"id": 2, "backend": "type1", "address-space": "vtd-07.0", "devices": ["0000:02:00.0"], "iova-ranges": [{"start": 0, "end": 251658239}, {"start": 252706816, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 0, "dma-avail": 65535, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
# context entry of 00:07.0 in domain 3: IOVA 0x8000000 -> GPA 0x703000
writeq 0x1001380 0x1008001
writeq 0x1001388 0x301
writeq 0x1008000 0x1009003
writeq 0x1009200 0x100a003
writeq 0x100a000 0x703003
writeq 0xfed90028 0xa000000000000000
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 2, "dma-avail": 65533, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}, {"id": 2, "backend": "type1", "address-space": "vtd-07.0", "devices": ["0000:02:00.0"], "iova-ranges": [{"start": 0, "end": 251658239}, {"start": 252706816, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 1, "dma-avail": 65534, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
qmp {"execute": "x-debug-vfio-host"}
expect-qmp {"host-mappings": 3, "locked-pages": 3}
# device_del: DEVICE_DELETED, the slot is empty, its container and its
# host mapping are gone; 00:06.0 keeps its two
qmp {"execute": "device_del", "arguments": {"id": "hp"}}
expect-qmp {}
outl 0xcf8 0x80003800
inl 0xcfc
expect OK 0xffffffff
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 2, "dma-avail": 65533, "skipped": [{"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
qmp {"execute": "x-debug-vfio-host"}
expect-qmp {"host-mappings": 2, "locked-pages": 2}

## 9. QMP: status, hot-unplug of the test device, reset
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
# and the passthrough container is back to all of RAM (DMAR off)
qmp {"execute": "x-query-vfio"}
expect-qmp {"containers": [{"id": 1, "backend": "type1", "address-space": "vtd-06.0", "devices": ["0000:01:00.0"], "iova-ranges": [{"start": 0, "end": 4276092927}, {"start": 4277141504, "end": 281474976710655}], "mappings": 1, "dma-avail": 65534, "skipped": [{"start": 4275634176, "end": 4275634735, "reason": "mmio"}, {"start": 4276092928, "end": 4277141503, "reason": "mmio"}]}]}
)";
}

}  // namespace viommu::system
