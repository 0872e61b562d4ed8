#!/usr/bin/env python3
"""Scalable-mode seed inputs for the vtd fuzz target (vtd_fuzzer.cc).

Usage: tests/fuzz/vtd_sm_seeds.py [--check]

Writes tests/fuzz/corpus/vtd/sm-* : byte programs for an x-scalable-mode
machine (byte 0 bit 6; bit 7 adds x-pasid-mode) that run a driver's setup
(SmSetup), build second-level tables, DMA through them, check translations
against the reference (vtd_sm_oracle.h), submit 256-bit descriptors and
break the tables in the ways 7.2 faults on. --check exits 1 when a file
differs from (or is missing in) the tree.
"""

import pathlib
import sys

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus" / "vtd"

CM, AW48, DT, SM, PASID = 0x01, 0x02, 0x20, 0x40, 0x80


def notifiers():
    return [14, 0, 14, 1]


def setup(k):
    return [0, 7, k]


def check(dev, write, a, b=0):
    return [0, 6, dev | (2 if write else 0), a, b]


def slot(table, index, k, t):
    # op 2, kind 2: a page-table slot (table `where % 10`, index
    # `where >> 4 & 7`); entry kind k (R/W in bits 3:2, PS 4), t.
    where = next(w for w in range(256)
                 if w % 10 == table and (w >> 4) & 7 == index)
    return [2, 2, where, k, t]


def tables_3level(root=0):
    # root (L3) slot 0 -> table 1 (L2); slot 0 -> table 2 (L1); four 4K
    # leaves on the data pages; L2 slot 1 a 2M leaf at 8M; L3 slot 1 a
    # 1G leaf at 0 (R only).
    return (slot(root, 0, 0x0C, 1) + slot(1, 0, 0x0C, 2) +
            slot(2, 0, 0x0E, 1) + slot(2, 1, 0x0E, 3) +
            slot(2, 2, 0x06, 1) + slot(2, 3, 0x0A, 3) +
            slot(1, 1, 0x1E, 4) + slot(root, 1, 0x16, 0))


def qword(v):
    return list(v.to_bytes(8, "little"))


def raw(off, v):
    # op 3: a raw RAM write of a qword at region offset `off`.
    return [3] + list(off.to_bytes(2, "little")) + qword(v)


def edu_dma(a, to_ram=False):
    return [12, 0x09 | (4 if to_ram else 0), a, 0]


def testdev_dma(a, write=False):
    return [10, 0x02 | (0x10 if write else 0), a, 0]


def pasid_entry(s, f, t, *extra):
    return [0, 4, s, f] + list(extra[:1]) + [t] + list(extra[1:])


SEEDS = {
    # Setup with 256-bit QI, tables, DMA, checks and the shadow.
    "sm-setup-dma": [CM | SM] + notifiers() + setup(0x28) + tables_3level() +
    [5, 4, 0x01] +  # IOTLB register, global (QI on: ignored)
    check(0, False, 0x00) + check(0, True, 0x02) + check(1, True, 0x03) +
    check(0, False, 0x08) + check(1, False, 0x00, 0x01) +
    edu_dma(0x00) + edu_dma(0x01, True) + testdev_dma(0x02, True) +
    testdev_dma(0x03),
    # Register-based invalidation, PT for edu (whose SLPTPTR table holds a
    # 1G leaf nothing may map), RID_PASID 1 for dma-testdev.
    "sm-pt-ridpasid": [CM | SM] + notifiers() + setup(0x50) +
    tables_3level(1) + slot(0, 2, 0x1E, 0) + check(0, True, 0x05) + check(1, False, 0x00) +
    check(1, True, 0x03) + edu_dma(0x05),
    # Hostile entries, each followed by a check: PASID entry not present,
    # PGTT 0 and 5, PT, AW 4 levels on aw-bits=39, FPD; directory entry
    # not present; context reserved bit, RID_PASID far away; root half
    # not present, reserved bit; then the setup again.
    "sm-faults": [CM | SM] + notifiers() + setup(0x28) + tables_3level() +
    check(0, False, 0x00) +
    pasid_entry(0, 0x20, 0) + check(0, False, 0x00) +
    pasid_entry(0, 0x06, 0) + check(0, True, 0x01) +
    pasid_entry(0, 0x07, 0, 5) + check(0, False, 0x01) +
    pasid_entry(0, 0x03, 0) + check(0, True, 0x01) +
    pasid_entry(0, 0x10, 0) + check(0, False, 0x01) +
    pasid_entry(0, 0x40, 0) + check(0, True, 0x30) +
    setup(0x28) + [0, 3, 0x08] + check(1, False, 0x00) +
    setup(0x28) + [0, 1, 0x10, 0x00, 0x17] + check(0, False, 0x00) +
    setup(0x28) + [0, 1, 0x00, 0x03, 0xFF, 0xFF, 0x0F, 0x00] +
    check(0, False, 0x00) +
    setup(0x28) + [0, 0, 0x01] + check(0, True, 0x00) +
    [0, 0, 0x0C, 0x03] + check(1, False, 0x00) +
    setup(0x28) + slot(2, 4, 0x2E, 1) + check(0, False, 0x04) +
    slot(2, 5, 0x4E, 3) + check(0, True, 0x05) +
    slot(2, 6, 0x6E, 1) + check(0, False, 0x06),
    # 256-bit descriptors submitted alone: PASID-IOTLB and PASID-cache
    # (accepted and ignored), context cache, IOTLB, wait, IEC, upper half.
    "sm-qi256": [CM | SM] + notifiers() + setup(0x28) + tables_3level() +
    check(0, False, 0x00) +
    [4, 0x80 | 2 << 3, 0x01, 0x00, 0x00] +
    [4, 0x80 | 3 << 3, 0x41] +
    [4, 0x80 | 3 << 3, 0x80, 0x05, 0x00, 0x01, 0x00] +
    [4, 0x80 | 2 << 3, 0xA0, 0x01, 0x00, 0x02, 0, 0, 0] +
    [0] * 12 + [4, 0x80 | 0 << 3, 0x01] +
    [4, 0x80 | 1 << 3, 0x11, 0x00, 0x00] +
    [4, 0x80 | 4 << 3, 0x02, 0x7F] + [4, 0x80 | 6 << 3, 0x00] +
    slot(2, 0, 0x0E, 3) + [4, 0x80 | 1 << 3, 0x01, 0x00, 0x00] +
    check(0, False, 0x00),
    # aw-bits=48, x-pasid-mode: 4-level tables, 1G leaf.
    "sm-pasid-aw48": [CM | AW48 | SM | PASID] + notifiers() + setup(0xA8) +
    slot(0, 0, 0x0C, 3) + tables_3level(3) + check(0, False, 0x00) +
    check(0, True, 0x01) + check(1, False, 0x00, 0x01) + edu_dma(0x01),
    # The other fault reasons: a leaf on the interrupt window (4K, 2M:
    # 0x87), IOVA beyond the 39-bit width (0x4), a second-level table
    # outside RAM (0x7), SLPTPTR outside RAM (0x3), a reserved context bit
    # (0xb), the context table outside RAM (0x9), the root table outside
    # RAM (0x8).
    "sm-fault-reasons": [CM | SM] + notifiers() + setup(0x28) +
    tables_3level() +
    raw(0x4038, 0xFEE00003) + check(0, False, 0x07) +
    raw(0x3010, 0xFEE00083) + check(1, True, 0x10) +
    check(0, False, 0x00, 0x04) +
    slot(1, 3, 0x03, 0) + qword(0x40_0000_0003) + check(0, False, 0x18) +
    [0, 4, 0x60, 0x00, 0x00, 0x00, 0x00] + qword(0x40_0000_0000 | 0x85) +
    check(0, False, 0x00) + setup(0x28) +
    [0, 1, 0x10, 0x00, 0x5E] + check(0, True, 0x00) + setup(0x28) +
    [0, 0x40, 0x00] + qword(0x40_0000_0001) + check(1, False, 0x00) +
    setup(0x28) + [5, 0xFE, 0x20, 0x00] + qword(0x40_0000_0400) +
    [5, 0x00, 0x02] + check(0, False, 0x00),
    # No caching mode, device-iotlb: DMA checks only, 128-bit queue.
    "sm-dt-nocm": [DT | SM] + setup(0x20) + tables_3level() +
    check(0, False, 0x00) + check(1, True, 0x02) +
    [4, 0x80 | 5 << 3, 0x00, 0x00, 0x00] + testdev_dma(0x02, True),
}


def main():
    check_only = "--check" in sys.argv[1:]
    stale = 0
    for name, prog in SEEDS.items():
        data = bytes(prog)
        path = CORPUS / name
        if path.exists() and path.read_bytes() == data:
            continue
        if check_only:
            print(f"vtd_sm_seeds.py: {path.name} is out of date")
            stale += 1
            continue
        path.write_bytes(data)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
