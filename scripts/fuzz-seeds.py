#!/usr/bin/env python3
"""Seed inputs for the qtest and vtd fuzz targets (docs/fuzzing.md).

Usage: scripts/fuzz-seeds.py [--check]

Sources: every tests/conformance/scenarios/*.qtest and the default workload
of `viommu run` (the raw string DefaultWorkload() in
system/default_workload.cc).

qtest target (tests/fuzz/qtest_fuzzer.cc: qtest protocol lines, at most 256
per input): comments, `args:`, `expect`/`expect-qmp` and `qmp` lines (script
runner directives, not qtest) and the conformance runner's `peers:`,
`qemu-7.2:`, `qemu-10.0:` and `viommu:` lines are dropped; `wait-dma` becomes
`clock_step 100000000`, what the conformance runner does on viommu. Written to
tests/fuzz/corpus/qtest/conf-<scenario> and .../default-workload.

vtd target (tests/fuzz/vtd_fuzzer.cc: a byte program, not text): scenarios
whose `args:` create intel-iommu are translated action by action:
  - byte 0: the intel-iommu properties (caching-mode, aw-bits=48,
    dma-translation=off, pt=off, device-iotlb, x-scalable-mode,
    x-pasid-mode);
  - RAM writes (tables, queue descriptors, data): the 4 KiB pages the
    scenario writes are relocated, in order of first write, onto the 16 pages
    of the target's region at 0x100000 (scenarios with more are skipped), and
    a 64-bit value that points into a relocated page is rewritten to match;
    each write becomes a raw write (opcode 3) of the whole aligned qword;
  - VT-d register writes: raw register writes (opcode 5, k=0xee/0xfe), RTADDR,
    IQA and IRTA values relocated;
  - edu DMA (the write of its command register): opcode 12 with the IOVA
    literal; `wait-dma`: a clock step of 100 ms (opcode 13);
  - dma-testdev DMA: opcode 10;
  - reads, PCI configuration (the target sets up BARs itself), other MMIO:
    dropped;
  - with caching-mode, MAP/UNMAP notifiers are registered on both devices
    first, so the notifier event-stream checks follow the whole program and
    the shadow-consistency check runs at the end if translation is on.
Written to tests/fuzz/corpus/vtd/conf-<scenario>. The programs follow the
scenario's intent (same table shapes, same register sequence), not its exact
answers: the target's RAM is 16 MiB and its tables live in its region.

Existing files with the same content are not duplicated. --check exits 1 when
a generated file differs from (or is missing in) the tree.
"""

import hashlib
import pathlib
import re
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests/conformance/scenarios"
WORKLOAD = ROOT / "system/default_workload.cc"
CORPUS = ROOT / "tests/fuzz/corpus"

QTEST_MAX_LINES = 256  # qtest_fuzzer.cc reads at most this many lines
VTD_MAX_ACTIONS = 192  # vtd_fuzzer.cc kMaxActions

VTD_BASE = 0xFED90000
VTD_SIZE = 0x230  # kRegBlockSize
EDU_BAR = 0xFE000000
TESTDEV_BAR = 0xFE100000
REGION = 0x100000
REGION_PAGES = 16
PAGE = 0x1000
RAM_LIMIT = 0x10000000  # the scenarios' -m 256M
POINTER_REGS = {0x20, 0x90, 0xB8}  # RTADDR, IQA, IRTA


def parse_int(s):
    return int(s, 0)


def scenario_lines(text):
    """(args, commands) of a scenario or script: comments and blanks gone."""
    args = []
    cmds = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("args:"):
            args += line[len("args:"):].split()
            continue
        # The conformance runner's recorded-answer directives
        # (docs/conformance-peers.md), not qtest.
        if line.startswith(("peers:", "qemu-7.2:", "qemu-10.0:", "viommu:")):
            continue
        cmds.append(line)
    return args, cmds


def default_workload():
    src = WORKLOAD.read_text()
    m = re.search(r'DefaultWorkload\(\)\s*\{\s*return R"\((.*?)\)";', src, re.S)
    if not m:
        sys.exit("fuzz-seeds.py: DefaultWorkload() raw string not found in "
                 + str(WORKLOAD))
    args = re.search(r"DefaultWorkloadMachineArgs\(\)\s*\{.*?return \{(.*?)\};",
                     src, re.S)
    argv = re.findall(r'"([^"]*)"', args.group(1)) if args else []
    return argv, scenario_lines(m.group(1))[1]


def to_qtest(cmds):
    out = []
    for c in cmds:
        word = c.split()[0]
        if word in ("expect", "expect-qmp", "qmp") or word.startswith("expect"):
            continue
        if c == "wait-dma":
            c = "clock_step 100000000"
        out.append(c)
    return ("\n".join(out[:QTEST_MAX_LINES]) + "\n").encode()


def iommu_config(args):
    """Byte 0 of a vtd program, or None without intel-iommu."""
    for i, a in enumerate(args):
        if a == "-device" and i + 1 < len(args) and \
                args[i + 1].split(",")[0] == "intel-iommu":
            props = dict(p.split("=", 1) for p in args[i + 1].split(",")[1:]
                         if "=" in p)
            cfg = 0
            if props.get("caching-mode") == "on":
                cfg |= 1
            if props.get("aw-bits") == "48":
                cfg |= 2
            if props.get("dma-translation") == "off":
                cfg |= 0xC
            if props.get("pt") == "off":
                cfg |= 0x10
            if props.get("device-iotlb") == "on":
                cfg |= 0x20
            if props.get("x-scalable-mode") == "on":
                cfg |= 0x40
                if props.get("x-pasid-mode") == "on":
                    cfg |= 0x80
            return cfg
    return None


def is_ram(addr):
    return addr < RAM_LIMIT


class VtdProgram:
    def __init__(self, cfg):
        self.cfg = cfg
        self.actions = []  # bytes per action
        self.pages = {}  # scenario page -> region page index
        self.shadow = {}  # scenario qword address -> value
        self.edu = {}
        self.testdev = {}

    def page_of(self, addr):
        page = addr & ~(PAGE - 1)
        if page not in self.pages:
            if len(self.pages) == REGION_PAGES:
                raise OverflowError("more than 16 pages")
            self.pages[page] = len(self.pages)
        return self.pages[page]

    def relocate(self, value):
        page = value & 0x000F_FFFF_FFFF_F000
        if page in self.pages:
            return (value & ~0x000F_FFFF_FFFF_F000) | \
                (REGION + self.pages[page] * PAGE)
        return value

    def ram_write(self, addr, data):
        # Update the shadow qwords, then write every touched qword whole.
        touched = []
        for i, b in enumerate(data):
            a = addr + i
            q = a & ~7
            v = self.shadow.get(q, 0)
            shift = (a - q) * 8
            v = (v & ~(0xFF << shift)) | (b << shift)
            self.shadow[q] = v
            if q not in touched:
                touched.append(q)
        for q in touched:
            idx = self.page_of(q)
            off = idx * PAGE + (q & (PAGE - 1))
            self.actions.append(struct.pack("<BHQ", 3, off,
                                            self.relocate(self.shadow[q])))

    def reg_write(self, off, value, size):
        if off >= VTD_SIZE or size not in (4, 8):
            return
        if off in POINTER_REGS:
            value = self.relocate(value)
        k = 0xFE if size == 8 else 0xEE
        self.actions.append(struct.pack("<BBHQ", 5, k, off,
                                        value & ((1 << (8 * size)) - 1)))

    @staticmethod
    def iova_bytes(iova):
        return struct.pack("<BBQ", 0xFF, 0, iova)

    def edu_write(self, off, value):
        self.edu[off] = value
        if off != 0x98 or not value & 1:
            return
        to_ram = bool(value & 2)
        iova = self.edu.get(0x88 if to_ram else 0x80, 0)
        count = self.edu.get(0x90, 0)
        k = 4 if to_ram else 0
        tail = b""
        if count == 8:
            k |= 1
        elif count > 0xFF:
            k |= 2
        else:
            tail = bytes([count])
        self.actions.append(bytes([12, k]) + self.iova_bytes(iova) + tail)

    def testdev_write(self, off, value):
        self.testdev[off] = value
        if off != 0x18:
            return
        lens = {1: 0, 4: 1, 8: 2, 64: 4, 0x1000: 5, 0x800: 6}
        length = self.testdev.get(0x10, 0)
        k = lens.get(length, 7)
        if value == 2:
            k |= 0x10
        body = bytes([10, k])
        if k & 7 == 7:
            body += struct.pack("<H", length & 0xFFFF)
        body += self.iova_bytes(self.testdev.get(0x08, 0))
        self.actions.append(body)

    def clock(self, ns):
        steps = max(1, ns // 10_000_000)
        while steps > 0:
            n = min(steps, 255)
            self.actions.append(bytes([13, n]))
            steps -= n

    def command(self, c):
        w = c.split()
        cmd = w[0]
        if cmd == "wait-dma":
            self.clock(100_000_000)
        elif cmd == "clock_step" and len(w) > 1:
            self.clock(parse_int(w[1]))
        elif cmd in ("writeb", "writew", "writel", "writeq"):
            size = {"b": 1, "w": 2, "l": 4, "q": 8}[cmd[-1]]
            addr, value = parse_int(w[1]), parse_int(w[2])
            if VTD_BASE <= addr < VTD_BASE + PAGE:
                self.reg_write(addr - VTD_BASE, value, size)
            elif EDU_BAR <= addr < EDU_BAR + 0x100000:
                self.edu_write(addr - EDU_BAR, value)
            elif TESTDEV_BAR <= addr < TESTDEV_BAR + 0x2000:
                self.testdev_write(addr - TESTDEV_BAR, value)
            elif is_ram(addr):
                self.ram_write(addr, value.to_bytes(size, "little"))
        elif cmd == "write" and len(w) > 3:
            addr, size = parse_int(w[1]), parse_int(w[2])
            data = bytes.fromhex(w[3][2:].ljust(2 * size, "0"))[:size]
            if is_ram(addr):
                self.ram_write(addr, data)
        elif cmd == "memset" and len(w) > 3:
            addr, size = parse_int(w[1]), parse_int(w[2])
            if is_ram(addr) and size <= 4 * PAGE:
                self.ram_write(addr, bytes([parse_int(w[3]) & 0xFF]) * size)
        # reads, port I/O (PCI configuration), other MMIO: dropped

    def encode(self):
        actions = self.actions
        if self.cfg & 1:
            # caching-mode: MAP/UNMAP notifiers on both devices from the
            # start, so the event-stream checks run on every sync and the
            # shadow check at the end (when translation is still on).
            actions = [bytes([14, 0]), bytes([14, 1])] + actions
        return bytes([self.cfg]) + b"".join(actions[:VTD_MAX_ACTIONS])


def to_vtd(args, cmds):
    cfg = iommu_config(args)
    if cfg is None:
        return None, "no intel-iommu"
    # Two passes: the first finds every page the scenario writes, so that a
    # pointer written before its target page (root entry -> context table)
    # is relocated too.
    first = VtdProgram(cfg)
    try:
        for c in cmds:
            first.command(c)
    except OverflowError as e:
        return None, str(e)
    prog = VtdProgram(cfg)
    prog.pages = first.pages
    for c in cmds:
        prog.command(c)
    return prog.encode(), None


def main():
    check = "--check" in sys.argv[1:]
    wanted = {}  # path -> bytes
    notes = []
    sources = [(p.stem, *scenario_lines(p.read_text()))
               for p in sorted(SCENARIOS.glob("*.qtest"))]
    wl_args, wl_cmds = default_workload()
    sources.append(("default-workload", wl_args, wl_cmds))
    for name, args, cmds in sources:
        stem = name if name == "default-workload" else "conf-" + name
        wanted[CORPUS / "qtest" / stem] = to_qtest(cmds)
        data, why = to_vtd(args, cmds)
        if data is None:
            notes.append(f"vtd: {name}: skipped ({why})")
        else:
            wanted[CORPUS / "vtd" / stem] = data

    # Dedupe: against each other and the files already in the corpus.
    seen = {}
    for d in ("qtest", "vtd"):
        for f in sorted((CORPUS / d).glob("*")):
            if f.is_file() and f not in wanted:
                seen[(d, hashlib.sha1(f.read_bytes()).hexdigest())] = f
    stale = 0
    written = 0
    for path, data in wanted.items():
        key = (path.parent.name, hashlib.sha1(data).hexdigest())
        if key in seen:
            notes.append(f"{path.parent.name}: {path.name}: same as "
                         f"{seen[key].name}, not written")
            continue
        seen[key] = path
        if path.exists() and path.read_bytes() == data:
            continue
        if check:
            print(f"fuzz-seeds.py: {path.relative_to(ROOT)} is out of date")
            stale += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += 1
    for n in notes:
        print("fuzz-seeds.py: " + n)
    total = sum(p.stat().st_size for d in ("qtest", "vtd")
                for p in (CORPUS / d).glob("*") if p.is_file())
    print(f"fuzz-seeds.py: {len(wanted)} seeds generated, {written} written; "
          f"qtest+vtd corpus now {total} bytes")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
