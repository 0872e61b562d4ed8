#!/usr/bin/env python3
"""Writes the seed inputs of the virtio_iommu fuzz target.

Each seed is a valid driver session in the target's byte program
(tests/fuzz/virtio_iommu_fuzzer.cc): byte 0 (boot-bypass), the init's two
bytes, then actions. Run from the source root:

    tests/fuzz/gen_virtio_iommu_seeds.py [OUTDIR]   # default tests/fuzz/corpus/virtio_iommu
"""
import os
import struct
import sys

EDU, TESTDEV, SELF, VFIO = 0x20, 0x28, 0x18, 0x30
DATA = 0x100000
R, W, RW = 1, 2, 3
# BuildRequest's type selector (k & 7) per request type.
ATTACH, DETACH, MAP, UNMAP, PROBE = 0, 2, 3, 5, 6


def u8(v):
    return bytes([v & 0xff])


def u16(v):
    return struct.pack('<H', v & 0xffff)


def u32(v):
    return struct.pack('<I', v & 0xffffffff)


def u64(v):
    return struct.pack('<Q', v & 0xffffffffffffffff)


def init(qsize=256, indirect=True, event_idx=True, ring_reset=True,
         event_buffers=4, device_features=0x77):
    k = {256: 0, 64: 1, 16: 2}[qsize]
    k |= (4 if indirect else 0) | (8 if event_idx else 0)
    k |= (0x10 if ring_reset else 0) | (event_buffers & 7) << 5
    return u8(k) + u8(device_features)


def domain(d):
    if d <= 3:
        return u8(d)
    if d == 0xffffffff:
        return u8(0xf0)
    return u8(0xf8) + u32(d)


def endpoint(ep):
    if ep == EDU:
        return u8(0)
    if ep == TESTDEV:
        return u8(2)
    if ep == VFIO:
        return u8(0x0a)
    if ep == SELF:
        return u8(3)
    if ep == 0:
        return u8(0x0b)
    if ep == 0x10000 | EDU:
        return u8(5)
    if ep <= 0xffff:
        return u8(6) + u16(ep)
    return u8(7) + u32(ep)


def iova(v):
    return u8(7) + u64(v)


TO_TOP = 'to-top'


def size(n):
    if n == TO_TOP:
        return u8(6)
    if n % 0x1000 == 0 and 1 <= n // 0x1000 <= 32:
        return u8((n // 0x1000 - 1) << 3)
    if n == 0x200000:
        return u8(3)
    if n == 0:
        return u8(5)
    return u8(7) + u64(n)


def req(shape, body):
    """One QueueRequest action: op 0, the chain shape, the request."""
    return u8(0) + u8(shape) + body + u8(0)  # exact readable length


def attach(d, ep, flags=0, shape=0):
    return req(shape, u8(ATTACH) + domain(d) + endpoint(ep) + u8(flags))


def detach(d, ep, shape=0):
    return req(shape, u8(DETACH) + domain(d) + endpoint(ep))


def map_(d, first, n, phys, flags=RW, shape=0):
    flag_sel = {3: 0, 1: 2, 2: 3, 0: 4, 4: 5, 7: 6, 8: 7}[flags]
    return req(shape, u8(MAP) + domain(d) + iova(first) + size(n) +
               u8(0x80) + u64(phys) + u8(flag_sel))


def unmap(d, first, n, shape=0):
    return req(shape, u8(UNMAP) + domain(d) + iova(first) + size(n))


def probe(ep, shape=0):
    return req(shape, u8(PROBE) + endpoint(ep))


def unknown(t, payload=b'', shape=0):
    return req(shape, u8(7) + u8(t) + u8(len(payload)) + payload)


KICK = u8(7)


def testdev_dma(addr, n, write=False):
    return u8(12) + u8(1 if write else 0) + iova(addr) + u8(n - 1)


def edu_dma(src, dst, len_log2=0):
    """edu reads at IOVA src, then writes the bytes back at IOVA dst."""
    return u8(13) + u8(len_log2) + iova(src) + iova(dst)


def bypass_write(v):
    return u8(9) + u8(v)


def device_reset(**kw):
    return u8(0x8a) + init(**kw)


def system_reset(**kw):
    return u8(0xcb) + init(**kw)


def malformed(kind):
    return u8(0xc6) + u8(kind)


def reregister(i):
    return u8(14) + u8(i)


def post_events(n):
    return u8(15) + u8(n - 1)


SEEDS = {
    # Linux-like: attach two endpoints, map, DMA both ways, unmap, detach.
    'map_dma_unmap': u8(0) + init() + attach(1, EDU) + attach(1, TESTDEV) +
    map_(1, 0x7000000, 0x4000, DATA + 0x10000) + KICK +
    testdev_dma(0x7000010, 32) + testdev_dma(0x7001000, 16, write=True) +
    edu_dma(0x7000000, 0x7002000, 3) + unmap(1, 0x7000000, 0x4000) + KICK +
    testdev_dma(0x7000000, 8) + detach(1, EDU) + detach(1, TESTDEV) + KICK,
    # PROBE of a known and an unknown endpoint, a short reply, unknown types.
    'probe_unknown': u8(0) + init() + probe(EDU) + probe(0x444) +
    probe(EDU, shape=0x80) + unknown(0) + unknown(6, b'\x01\x02') + KICK,
    # The spec's UNMAP examples and the atomic split.
    'unmap_examples': u8(0) + init() + attach(2, EDU) +
    map_(2, 0x0, 0x1000, DATA) + map_(2, 0x1000, 0x1000, DATA + 0x1000) +
    map_(2, 0x2000, 0x1000, DATA + 0x2000) + unmap(2, 0x800, 0x1800) +
    unmap(2, 0x0, 0x2000) + unmap(2, 0x2000, 0x1000) +
    map_(2, 0x10000, 0x3000, DATA) + unmap(2, 0x11000, 0x1000) +
    unmap(2, 0x0, 0x100000) + KICK,
    # Domain moves, bypass domains, mismatches, last-endpoint destruction.
    'attach_matrix': u8(0) + init() + attach(1, EDU) + attach(2, EDU) +
    map_(2, 0x5000, 0x1000, DATA) + attach(2, TESTDEV) + detach(2, EDU) +
    attach(3, 0, flags=1) + attach(3, TESTDEV) + map_(3, 0, 0x1000, DATA) +
    detach(2, TESTDEV) + detach(3, 0) + detach(3, 0) + attach(1, 0x444) +
    attach(0xffffffff, SELF) + KICK,
    # boot-bypass off: faults for unknown, detached and unmapped accesses,
    # then config.bypass on and off, and a system reset.
    'faults_bypass': u8(1) + init(event_buffers=7) + testdev_dma(DATA, 8) +
    attach(1, TESTDEV) + map_(1, 0x9000, 0x1000, DATA, flags=R) + KICK +
    testdev_dma(0x9000, 8, write=True) + testdev_dma(0xa000, 4) +
    detach(1, TESTDEV) + KICK + testdev_dma(DATA, 4) + post_events(4) +
    bypass_write(1) + testdev_dma(DATA + 0x100, 8) + bypass_write(0) +
    system_reset(),
    # Indirect and split chains on a 16-entry queue, replayed notifiers.
    'chains_small_queue': u8(0) + init(qsize=16) + attach(1, EDU, shape=1) +
    map_(1, 0x200000, 0x200000, DATA + 0x200000, shape=3) +
    map_(1, 0x1000, 0x1000, DATA, shape=6) + probe(TESTDEV, shape=0x25) +
    unmap(1, 0x1000, 0x1000, shape=7) + reregister(1) + KICK +
    edu_dma(0x200000, 0x200800, 7),
    # A malformed chain: NEEDS_RESET, then a device reset and new requests.
    # A mapping to the top of the IOVA space whose physical start is only
    # page-aligned (2^52 one-page events before 74624fa: a hang).
    'map_offset_to_top': u8(0) + init() + attach(1, EDU) + attach(1, VFIO) +
    map_(1, 0, TO_TOP, 0x1000) + KICK + unmap(1, 0, TO_TOP) + KICK,
    # vfio-pci at 06.0: its container follows ATTACH, MAP (RAM, the MSI
    # window, MMIO), UNMAP, DETACH, the bypass switch and a system reset.
    'vfio_container_follows': u8(0) + init() + attach(1, VFIO) +
    map_(1, 0x8000000, 0x1000, DATA + 0x200000) +
    map_(1, 0x8200000, 0x200000, DATA + 0x400000, flags=R) +
    map_(1, 0xfee00000, 0x1000, DATA) + map_(1, 0x9000000, 0x1000, 0xfed00000) +
    KICK + unmap(1, 0x8000000, 0x1000) + attach(1, EDU) + KICK +
    detach(1, VFIO) + KICK + bypass_write(0) + attach(2, VFIO) + KICK +
    system_reset(),
    'malformed_then_reset': u8(0) + init() + attach(1, EDU) +
    map_(1, 0x3000, 0x1000, DATA) + malformed(0) + attach(2, TESTDEV) +
    KICK + device_reset() + attach(1, EDU) + KICK + malformed(9) + KICK +
    system_reset(qsize=64),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'tests/fuzz/corpus/virtio_iommu'
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds in {out}')


if __name__ == '__main__':
    main()
