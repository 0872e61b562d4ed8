#!/usr/bin/env python3
"""Writes the hand-made seeds of vfio_container_fuzzer and vfio_ioctl_fuzzer
in their byte encodings (see the file comments of the two targets):
    tests/fuzz/gen_vfio_seeds.py   # from the source root; rewrites the seeds
"""
import os

ROOT = os.path.dirname(os.path.abspath(__file__))

# ---- vfio_container: op = byte % 14 --------------------------------------
ADD, REMOVE, TOGGLE_RO, BEGIN, COMMIT, MAP, UNMAP = 0, 2, 3, 4, 5, 6, 8
TOGGLE_IOMMU, ATTACH, DETACH, FAULT, MEMLOCK = 9, 10, 11, 12, 13
RAM, ROM, RAMDEV, MMIO, ALIAS = 0, 1, 2, 3, 4


def add(kind, window, page, npages):  # npages 1..16, or 0x30 = 2 MiB (window 0)
    return [ADD, kind, window | page << 3, npages - 1 if npages <= 16 else 0x30]


def container_seeds():
    s = {}
    # type1: RAM crossing the MSI window and the direct region, a read-only
    # ROM, a BAR (ram_device), MMIO, two devices sharing or splitting.
    body = (add(RAM, 0, 0, 16) + add(RAM, 3, 0, 16) + [ATTACH, 0] +
            add(ROM, 1, 2, 8) + [ATTACH, 1] + add(RAMDEV, 6, 4, 12) +
            add(MMIO, 0, 2, 4) + [DETACH, 0, TOGGLE_RO, 0] +
            add(RAM, 5, 0, 16) + [ATTACH, 2, REMOVE, 1, DETACH, 1])
    s['type1-sections'] = bytes([0] + body)
    s['iommufd-sections'] = bytes([1] + body)
    # Aliases at sub-page offsets (rounding, page-offset mismatch), bit 63,
    # inside a transaction.
    body = ([ATTACH, 0, BEGIN] + [ADD, ALIAS | 0x40 | 0x20, 0 | 1 << 3, 3] +
            [ADD, ALIAS | 0x20, 0 | 5 << 3, 3] + add(RAM, 7, 4, 16) +
            [COMMIT] + add(RAM, 6, 8, 16) + [REMOVE, 0])
    s['type1-alias-txn'] = bytes([0] + body)
    s['iommufd-alias-txn'] = bytes([1] + body)
    # Guest IOMMU: table entries before the attach (replay), MAP/UNMAP
    # after, one straddling the MSI window (0xc0000000 + 0x3edfc000), a
    # read-only one, one to MMIO, the region toggled (replay on a new
    # notifier), a 2 MiB block over 2 MiB of RAM.
    body = (add(RAM, 0, 0, 0x30) + add(RAM, 3, 0, 16) + add(MMIO, 4, 0, 4) +
            [MAP, 0x00 | 1 << 2, 0x00 | 2 << 3, 3] +
            [ATTACH, 0] +
            [MAP, 0x01, 0x03, 3] + [MAP, 0x01 | 4 << 2, 0x03 | 4 << 3, 1] +
            [MAP, 0x03, 0x04, 3] + [MAP, 0x80, 0x00, 3] +
            [TOGGLE_IOMMU, TOGGLE_IOMMU, ATTACH, 1, UNMAP, 0x01, 0x00,
             UNMAP, 0x80, 0x00, REMOVE, 1])
    s['type1-iommu'] = bytes([2] + body)
    s['iommufd-iommu'] = bytes([3] + body)
    # Injected failures: the 2nd MAP_DMA fails (type1), a group attach
    # fails, a memlock limit (ENOMEM for both backends).
    body = (add(RAM, 0, 0, 8) + [ATTACH, 0] + [FAULT, 0x01] +
            add(RAM, 0, 10, 4) + add(RAM, 5, 0, 4) + [FAULT, 0x80 | 1] +
            [ATTACH, 1, MEMLOCK, 2] + add(RAM, 6, 0, 8) + [MEMLOCK, 0] +
            [ATTACH, 2, DETACH, 0, DETACH, 2])
    s['type1-faults'] = bytes([0] + body)
    s['iommufd-faults'] = bytes([1] + body)
    return s


# ---- vfio_ioctl: op = byte % 8 (0-1 open, 2 close, else ioctl) ------------
OPEN, CLOSE, IOCTL = 0, 2, 3
P_VFIO, P_G1, P_G2, P_G3, P_IOMMU, P_CDEV0, P_CDEV1 = 0, 1, 2, 3, 4, 5, 6
(R_API, R_CHECK, R_SET_IOMMU, R_STATUS, R_SET_CONTAINER, R_UNSET,
 R_GET_DEVICE_FD, R_DEV_INFO, R_REGION_INFO, R_IRQ_INFO, R_RESET, R_GET_INFO,
 R_MAP, R_UNMAP, R_ENABLE, R_DISABLE, R_DIRTY, R_BIND, R_ATTACH_PT,
 R_DETACH_PT, R_DESTROY, R_IOAS_ALLOC, R_ALLOW, R_COPY, R_RANGES, R_IOAS_MAP,
 R_IOAS_UNMAP, R_OPTION, R_VFIO_IOAS, R_HWPT_ALLOC, R_HW_INFO) = range(31)
FULL = 3  # PickArgsz: the struct's size
# PickIova bytes: 0x02 = 0x100000, 0x04 = MSI window, 0x0a = 2^64 - 1,
# 0x0b = 2^64 - 4K; PickSize: 0x01 = 4K, 0x06 = 2^64 - 1, 0x05 = 2 MiB.


def ioctl(fd, req, flags, *rest):
    return [IOCTL, fd, req, flags] + list(rest)


def ioctl_seeds():
    s = {}
    type1 = ([OPEN, P_VFIO, OPEN, P_G1] +
             ioctl(1, R_STATUS, 0, FULL, 0) +
             ioctl(1, R_SET_CONTAINER, 0, 0) +
             ioctl(0, R_SET_IOMMU, 0, 3) +
             ioctl(0, R_GET_INFO, 0, 6, 0) + ioctl(0, R_GET_INFO, 0, 2, 0) +
             ioctl(0, R_MAP, 3, FULL, 0x00, 0x02, 0x01) +
             ioctl(0, R_MAP, 3, FULL, 0x08, 0x04, 0x01) +       # MSI: EINVAL
             ioctl(0, R_MAP, 3, FULL, 0x10, 0x0b, 0x06) +       # wraps
             ioctl(0, R_MAP, 3, FULL, 0x03, 0x12, 0x01) +       # RO memory
             ioctl(0, R_MAP, 1, FULL, 0x03, 0x12, 0x01) +
             ioctl(0, R_MAP, 3, FULL, 0x05, 0x22, 0x01) +       # PFNMAP
             ioctl(0, R_DIRTY, 1, 5) +
             ioctl(0, R_DIRTY, 4, 5, 0x02, 0x03, 0, 0x10) +
             ioctl(0, R_UNMAP, 1, 4, 0x02, 0x01, 0, 0x10) +
             ioctl(1, R_GET_DEVICE_FD, 0, 0) +
             ioctl(2, R_DEV_INFO, 0, 6, 0) + ioctl(2, R_REGION_INFO, 0, 6, 2) +
             ioctl(0, R_UNMAP, 2, FULL, 0x00, 0x00) +           # UNMAP_ALL
             [CLOSE, 1])
    s['type1-map-unmap'] = bytes([0x02] + type1)
    s['type1-latest-limits'] = bytes([0x20 | 0x04 | 0x00] + type1)
    iommufd = ([OPEN, P_IOMMU, OPEN, P_CDEV0] +
               ioctl(1, R_BIND, 0, FULL, 0, 0) +
               ioctl(0, R_IOAS_ALLOC, 0, FULL) +
               ioctl(0, R_IOAS_ALLOC, 0x40, 5) +                 # E2BIG tail
               ioctl(1, R_ATTACH_PT, 0, FULL, 1, 0) +
               ioctl(0, R_RANGES, 0, 4, 1, 4) +
               ioctl(0, R_IOAS_MAP, 7, FULL, 1, 0x00, 0x01, 0x02) +
               ioctl(0, R_IOAS_MAP, 6, FULL, 1, 0x08, 0x03, 0x00) +  # auto
               ioctl(0, R_IOAS_MAP, 7, FULL, 1, 0x05, 0x01, 0x12) +  # PFNMAP
               ioctl(0, R_COPY, 7, FULL, 2, 1, 0x01, 0x22, 0x02) +
               ioctl(0, R_ALLOW, 0, FULL, 2, 2, 0x02, 0x04, 0x04, 0x01,
                     0x0a, 0x06, 0x00, 0x01) +
               ioctl(0, R_IOAS_UNMAP, 0, FULL, 1, 0x0a, 0x06) +
               ioctl(0, R_IOAS_UNMAP, 0, FULL, 1, 0x00, 0x06) +
               ioctl(0, R_OPTION, 0, FULL, 0, 1, 0, 0) +
               ioctl(0, R_VFIO_IOAS, 0, FULL, 1, 1) +
               ioctl(1, R_DETACH_PT, 0, FULL, 0) +
               ioctl(0, R_DESTROY, 0, FULL, 1) +
               [OPEN, P_VFIO] + ioctl(2, R_CHECK, 0, 3) +
               ioctl(2, R_SET_IOMMU, 0, 3) +
               ioctl(0, R_HWPT_ALLOC, 1, FULL, 1, 2, 0, 0, 0))
    s['iommufd-ioas'] = bytes([0x02 | 0x08] + iommufd)
    compat = ([OPEN, P_IOMMU, OPEN, P_G2] +
              ioctl(1, R_SET_CONTAINER, 0, 0) +
              ioctl(0, R_SET_IOMMU, 0, 3) + ioctl(0, R_GET_INFO, 0, 6, 0) +
              ioctl(1, R_GET_DEVICE_FD, 0, 1) +
              ioctl(0, R_MAP, 3, FULL, 0x00, 0x06, 0x01) +      # direct: EINVAL
              ioctl(0, R_MAP, 3, FULL, 0x00, 0x02, 0x03) +
              ioctl(0, R_UNMAP, 0, FULL, 0x12, 0x01) +
              [CLOSE, 2, CLOSE, 1])
    s['iommufd-compat'] = bytes([0x01] + compat)
    return s


def main():
    for name, seeds in (('vfio_container', container_seeds()),
                        ('vfio_ioctl', ioctl_seeds())):
        d = os.path.join(ROOT, 'corpus', name)
        os.makedirs(d, exist_ok=True)
        for seed, data in seeds.items():
            with open(os.path.join(d, seed), 'wb') as f:
                f.write(data)


if __name__ == '__main__':
    main()
