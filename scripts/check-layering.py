#!/usr/bin/env python3
"""Checks the include arrows between viommu's layers (docs/architecture.md,
"Layers and dependency arrows").

    scripts/check-layering.py [ROOT]          check the tree at ROOT (default:
                                              the repository holding this script)
    scripts/check-layering.py --self-test     prove the check can fail

Each layer keeps its public headers under an include root of its own,
<layer>/include/viommu/<layer>/, and its Meson dependencies export only that
root (plus, transitively, the roots of the dependencies it declares), so the
build already refuses most wrong arrows. This script states the arrows in
one table and also catches what a build cannot: a Meson dependency declared
one arrow too many, a public header including a private one, a header in
the wrong root, a private header used outside its directory. It reads every
#include of the production code (util/ devcore/ memory/ hw/ vfio/ system/
tools/ capi/ with their public headers, and include/viommu.h) and prints
each violation as

    path:line: <layer> must not include <header> (<rule>)

Exit status: 0 clean, 1 violations, 2 usage error. Tests (tests/) are
white-box and may include private headers of the layer they test; they are
not checked.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

# The arrows: layer -> the layers it may include directly. A layer may
# include itself and everything reachable through these arrows (the closure
# is computed below). This table is the one in docs/architecture.md; change
# both together.
ARROWS = {
    'util': [],
    # devcore: the device logic hw/ and vfio/ both need (edu engine, timer
    # interface, PCI config layout, host-IOMMU facts), below both.
    'devcore': ['util'],
    'memory': ['util'],
    'hw/core': ['memory', 'devcore'],
    'hw/pci': ['hw/core'],
    'hw/misc': ['hw/pci'],
    # hw/virtio: the virtio PCI transport later virtio devices sit on.
    'hw/virtio': ['hw/pci'],
    # hw/iommu: the vIOMMU models, behind the seam in hw/core/viommu.h.
    'hw/iommu': ['hw/core'],
    # hw/iommu/virtio: virtio-iommu, a vIOMMU that is also a virtio device.
    'hw/iommu/virtio': ['hw/iommu', 'hw/virtio'],
    'hw/i386': ['hw/misc', 'hw/iommu', 'hw/iommu/virtio'],
    # vfio/ never sees hw/ or system/. vfio/host is the ioctl-shaped
    # HostBackend interface; the container layer (vfio/) sits on it and on
    # memory/; the two backends implement it.
    'vfio/host': ['util'],
    'vfio/host/model': ['vfio/host', 'devcore'],
    'vfio/host/linux': ['vfio/host'],
    'vfio': ['vfio/host', 'memory', 'devcore'],
    # The front ends know only util/ (and GLib): the machine is reached
    # through QtestTarget and registered QMP handlers.
    'system/qtest': ['util'],
    'system/qmp': ['util'],
    # system/vfio: the guest-facing vfio-pci device, where hw/pci meets the
    # HostBackend.
    'system/vfio': ['hw/pci', 'vfio/host'],
    # The rest of system/ wires everything together.
    'system': ['system/qtest', 'system/qmp', 'system/vfio', 'hw/i386',
               'vfio', 'vfio/host/model', 'vfio/host/linux'],
    'tools': ['memory'],
    # capi: the embedding C API (include/viommu.h), a thin layer over the
    # machine-less layers (the vIOMMU models, virtio-iommu-pci's function on
    # a bus of its own, VFIO); never system/ or a machine (hw/i386), and
    # build/viommu does not need it.
    'capi': ['hw/iommu', 'hw/iommu/virtio', 'vfio', 'vfio/host/model',
             'vfio/host/linux'],
}

# The one public header outside <layer>/include/viommu/<layer>/: the C API,
# which embedders include as <viommu.h>. Path -> layer.
C_API_HEADERS = {'include/viommu.h': 'capi'}

# A public header is <layer>/include/viommu/<layer>/...: the part before
# this marker is the layer that owns it.
PUBLIC_ROOT = '/include/viommu/'

# Documented exceptions to ARROWS: (layer, header as written) -> why.
# None today (the host-IOMMU facts hw/iommu reads moved to devcore/).
HEADER_EXCEPTIONS = {}

# <sys/ioctl.h>: only the real-kernel backend issues ioctls. Exceptions are
# per file.
IOCTL_LAYERS = {'vfio/host/linux'}
IOCTL_FILE_EXCEPTIONS = {
    'vfio/host/model/process_memory.cc':
        'PROCMAP_QUERY on /proc/self/maps (the GUP model asks the running '
        'kernel which mappings exist), not a VFIO or iommufd fd',
}

# Third-party headers a public header may include with quotes; any other
# quoted include in include/ that is not "viommu/..." is private.
THIRD_PARTY_QUOTED = {'absl', 'gtest', 'gmock', 'benchmark'}

PRODUCTION_EXCLUDED = {'tests', 'subprojects', 'docs', 'scripts', 'include'}
SOURCE_SUFFIXES = ('.h', '.hh', '.hpp', '.cc', '.cpp', '.inc')
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def closure(arrows):
    allowed = {}
    for layer in arrows:
        seen, todo = {layer}, [layer]
        while todo:
            for nxt in arrows.get(todo.pop(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        allowed[layer] = seen
    return allowed


ALLOWED = closure(ARROWS)


def layer_of(directory):
    """The layer a directory (repository-relative, '/'-separated) belongs
    to: the longest ARROWS key that is a prefix of it, or None."""
    best = None
    for layer in ARROWS:
        if directory == layer or directory.startswith(layer + '/'):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def public_header_layer(header):
    """The layer of a public header written as "viommu/<layer>/..."."""
    return layer_of(os.path.dirname(header)[len('viommu/'):])


def production_files(root):
    """(relative path, is_public_header) for every file to check."""
    out = []
    for top in sorted(os.listdir(root)):
        full = os.path.join(root, top)
        if (not os.path.isdir(full) or top.startswith('.') or
                top.startswith('build') or top in PRODUCTION_EXCLUDED):
            continue
        for dirpath, _, names in os.walk(full):
            for name in sorted(names):
                if name.endswith(SOURCE_SUFFIXES):
                    rel = os.path.relpath(os.path.join(dirpath, name), root)
                    rel = rel.replace(os.sep, '/')
                    out.append((rel, PUBLIC_ROOT in '/' + rel))
    pub = os.path.join(root, 'include')
    for dirpath, _, names in os.walk(pub):
        for name in sorted(names):
            if name.endswith(SOURCE_SUFFIXES):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                out.append((rel.replace(os.sep, '/'), True))
    return sorted(out)


def private_top_dirs(root):
    """Top-level directories whose headers are private ("memory/render.h")."""
    tops = set()
    for top in os.listdir(root):
        if (os.path.isdir(os.path.join(root, top)) and
                not top.startswith('.') and not top.startswith('build') and
                top not in PRODUCTION_EXCLUDED):
            tops.add(top)
    return tops | {'tests'}


def check(root):
    violations = []
    private_tops = private_top_dirs(root)
    for rel, public in production_files(root):
        directory = os.path.dirname(rel)
        if public and rel in C_API_HEADERS:
            layer = C_API_HEADERS[rel]
        elif public:
            owner, _, below = ('/' + rel).partition(PUBLIC_ROOT)
            owner = owner[1:]
            layer = layer_of(owner)
            if layer != owner or public_header_layer('viommu/' + below) != owner:
                violations.append((rel, 1, owner or 'include/', rel,
                                   'public headers live in '
                                   '<layer>/include/viommu/<layer>/'))
                continue
        else:
            layer = layer_of(directory)
        if layer is None:
            violations.append((rel, 1, directory, rel,
                               'directory is in no layer: add it to ARROWS in '
                               'scripts/check-layering.py and to '
                               'docs/architecture.md'))
            continue
        with open(os.path.join(root, rel), encoding='utf-8',
                  errors='replace') as f:
            lines = f.read().splitlines()
        for lineno, line in enumerate(lines, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            quote, header = m.group(1), m.group(2)
            rule = None
            if header == 'sys/ioctl.h':
                if layer not in IOCTL_LAYERS and rel not in IOCTL_FILE_EXCEPTIONS:
                    rule = 'only vfio/host/linux issues ioctl(2)'
            elif header.startswith('viommu/'):
                target = public_header_layer(header)
                if target is None:
                    rule = 'no such layer in the arrow table'
                elif (target not in ALLOWED[layer] and
                      (layer, header) not in HEADER_EXCEPTIONS):
                    rule = '%s may include only %s' % (
                        layer, ', '.join(sorted(ALLOWED[layer])))
            elif (public and quote == '"' and
                  header.split('/')[0] not in THIRD_PARTY_QUOTED):
                rule = 'a public header never includes a private one'
            elif quote == '"' and header.split('/')[0] in private_tops:
                # A private header: "memory/render.h".
                if os.path.dirname(header) != directory:
                    rule = ('private headers are for their own directory '
                            '(%s/)' % os.path.dirname(header))
            if rule:
                violations.append((rel, lineno, layer, header, rule))
    return violations


def report(violations, out):
    for rel, lineno, layer, header, rule in violations:
        out.write('%s:%d: %s must not include %s (%s)\n' %
                  (rel, lineno, layer, header, rule))


def main_check(root):
    violations = check(root)
    report(violations, sys.stdout)
    nfiles = len(production_files(root))
    if violations:
        print('check-layering: %d violation(s) in %d files' %
              (len(violations), nfiles))
        return 1
    print('check-layering: %d files, arrows hold' % nfiles)
    return 0


# --- self-test --------------------------------------------------------------

def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def _append_line(root, rel, line):
    with open(os.path.join(root, rel), 'a', encoding='utf-8') as f:
        f.write(line + '\n')


def self_test(repo):
    """Copies the real tree, checks it is clean, then seeds one violation of
    each rule into a fresh copy and checks each is reported."""
    failures = []
    script = os.path.abspath(__file__)
    tops = [t for t in private_top_dirs(repo) if t != 'tests'] + ['include']

    def fresh_copy(tmp):
        dst = tempfile.mkdtemp(dir=tmp)
        for top in tops:
            src = os.path.join(repo, top)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(dst, top),
                                ignore=shutil.ignore_patterns('*.o', '*.a'))
        return dst

    def run(root):
        p = subprocess.run([sys.executable, script, root],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        return p.returncode, p.stdout

    # One seeded line per rule: (file, line appended, text expected).
    seeds = [
        ('vfio/container.cc', '#include "viommu/hw/pci/pci_device.h"',
         'vfio/container.cc:%d: vfio must not include viommu/hw/pci/pci_device.h'),
        ('vfio/include/viommu/vfio/container.h', '#include "viommu/system/vm.h"',
         'vfio/include/viommu/vfio/container.h:%d: vfio must not include viommu/system/vm.h'),
        ('util/check.cc', '#include "viommu/memory/iommu.h"',
         'util/check.cc:%d: util must not include viommu/memory/iommu.h'),
        ('util/include/viommu/util/range.h', '#include "viommu/vfio/container.h"',
         'util/include/viommu/util/range.h:%d: util must not include viommu/vfio/container.h'),
        ('memory/render.cc', '#include "viommu/hw/core/msi.h"',
         'memory/render.cc:%d: memory must not include viommu/hw/core/msi.h'),
        ('hw/pci/pci_bus.cc', '#include "viommu/vfio/vfio_manager.h"',
         'hw/pci/pci_bus.cc:%d: hw/pci must not include viommu/vfio/vfio_manager.h'),
        ('hw/core/include/viommu/hw/core/msi.h', '#include "viommu/system/vm.h"',
         'hw/core/include/viommu/hw/core/msi.h:%d: hw/core must not include viommu/system/vm.h'),
        ('hw/iommu/intel/vtd_iotlb.cc', '#include "viommu/hw/misc/edu.h"',
         'hw/iommu/intel/vtd_iotlb.cc:%d: hw/iommu must not include viommu/hw/misc/edu.h'),
        ('system/qmp/qmp_server.cc', '#include "viommu/memory/iommu.h"',
         'system/qmp/qmp_server.cc:%d: system/qmp must not include viommu/memory/iommu.h'),
        ('memory/include/viommu/memory/iommu.h', '#include "memory/render.h"',
         'memory/include/viommu/memory/iommu.h:%d: memory must not include memory/render.h '
         '(a public header never includes a private one)'),
        ('hw/pci/include/viommu/hw/pci/pci_bus.h', '#include "pci_bus_impl.h"',
         'hw/pci/include/viommu/hw/pci/pci_bus.h:%d: hw/pci must not include pci_bus_impl.h '
         '(a public header never includes a private one)'),
        ('vfio/container.cc', '#include "memory/render.h"',
         'vfio/container.cc:%d: vfio must not include memory/render.h '
         '(private headers are for their own directory'),
        ('vfio/host/model/type1_iommu.cc', '#include <sys/ioctl.h>',
         'vfio/host/model/type1_iommu.cc:%d: vfio/host/model must not include '
         'sys/ioctl.h (only vfio/host/linux'),
        ('memory/include/viommu/hw/core/stray.h', '#include <cstdint>',
         'memory/include/viommu/hw/core/stray.h:1: memory must not include '
         'memory/include/viommu/hw/core/stray.h (public headers live in '
         '<layer>/include/viommu/<layer>/)'),
        ('include/viommu/memory/old_place.h', '#include <cstdint>',
         'include/viommu/memory/old_place.h:1: include/ must not include '
         'include/viommu/memory/old_place.h (public headers live in '
         '<layer>/include/viommu/<layer>/)'),
        ('newlayer/thing.cc', '#include "viommu/util/range.h"',
         'newlayer/thing.cc:1: newlayer must not include newlayer/thing.cc '
         '(directory is in no layer'),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        clean = fresh_copy(tmp)
        code, out = run(clean)
        if code != 0:
            failures.append('the clean copy of the tree fails:\n' + out)
        for rel, line, expected in seeds:
            root = fresh_copy(tmp)
            path = os.path.join(root, rel)
            if os.path.exists(path):
                with open(path, encoding='utf-8') as f:
                    n = len(f.read().splitlines()) + 1
                _append_line(root, rel, line)
            else:
                n = 1
                _write(root, rel, line + '\n')
            want = expected % n if '%d' in expected else expected
            code, out = run(root)
            if code != 1 or want not in out:
                failures.append('seeded %r into %s: want exit 1 and %r, got '
                                'exit %d:\n%s' % (line, rel, want, code, out))
            shutil.rmtree(root)
    for f in failures:
        print('SELF-TEST FAIL: ' + f)
    if failures:
        return 1
    print('check-layering self-test: clean tree passes, %d seeded violations '
          'each reported' % len(seeds))
    return 0


def main(argv):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = argv[1:]
    if args and args[0] == '--self-test':
        return self_test(args[1] if len(args) > 1 else repo)
    if len(args) > 1 or (args and args[0].startswith('-')):
        sys.stderr.write(__doc__)
        return 2
    return main_check(args[0] if args else repo)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
