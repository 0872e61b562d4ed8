#!/usr/bin/env python3
"""The differential suites cannot pass by skipping: runs each suite's runner
with its peer hidden and checks that it fails with CI=true and skips (77)
without CI, naming what is missing and how to install it both times.

    check_peer_missing.py --conformance=BIN --real-kernel=SCRIPT --init=FILE

BIN is build/tests/conformance/conformance_test (QEMU 7.2 hidden through
QEMU_BINARY; then, with 7.2 there, QEMU 10.0 hidden through QEMU10_BINARY); SCRIPT is tests/host/run_real_kernel.sh, run with a PATH that
has the tools it needs before the boot but no qemu-system-x86_64 (so it
stops before downloading or booting anything), and with --missing= (how
Meson reports a missing dtc). Fast: nothing is booted.
"""

import os
import shutil
import subprocess
import sys
import tempfile


def run(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    return p.returncode, p.stdout


def expect(failures, name, cmd, env, want_rc, want_texts):
    rc, out = run(cmd, env)
    missing = [t for t in want_texts if t not in out]
    if rc != want_rc or missing:
        failures.append('%s: want exit %d and %r, got exit %d:\n%s' %
                        (name, want_rc, missing or want_texts, rc, out))
    else:
        print('ok: %s (exit %d): %s' % (name, rc, out.strip().splitlines()[-1]))


def both_modes(failures, name, cmd, env, texts):
    """CI=true: exit 1 with FAIL; CI unset: exit 77 with SKIP."""
    ci = dict(env, CI='true')
    expect(failures, name + ' with CI=true', cmd, ci, 1, ['FAIL: '] + texts)
    local = dict(env)
    local.pop('CI', None)
    expect(failures, name + ' without CI', cmd, local, 77, ['SKIP: '] + texts)


def main(argv):
    opts = dict(a.split('=', 1) for a in argv[1:] if a.startswith('--'))
    failures = []
    base = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if opts.get('--conformance'):
            env = dict(base, QEMU_BINARY=os.path.join(tmp, 'no-qemu-system-x86_64'),
                       VIOMMU_BINARY='/bin/false', SCENARIO_DIR=tmp)
            both_modes(failures, 'conformance without QEMU',
                       [opts['--conformance']], env,
                       ['no-qemu-system-x86_64 is not installed',
                        'apt-get install qemu-system-x86',
                        'scripts/setup-deps.sh'])
            # QEMU 7.2 there, QEMU 10.0 (the second peer) hidden: the
            # qemu10_peer test's mode (CONFORMANCE_REQUIRE=10.0).
            if os.access(base.get('QEMU_BINARY',
                                  '/usr/bin/qemu-system-x86_64'), os.X_OK):
                env10 = dict(base, QEMU10_BINARY=os.path.join(tmp, 'no-qemu-10'),
                             CONFORMANCE_REQUIRE='10.0',
                             VIOMMU_BINARY='/bin/false', SCENARIO_DIR=tmp)
                both_modes(failures, 'conformance without QEMU 10.0',
                           [opts['--conformance']], env10,
                           ['no-qemu-10 is missing (QEMU 10.0.2',
                            'scripts/setup-qemu-peer.sh'])
        script = opts.get('--real-kernel')
        if script:
            bash = shutil.which('bash')
            # A PATH with what the script needs up to its QEMU check
            # (stubs for cpio and dpkg-deb: only their presence is checked
            # first) and no qemu-system-x86_64 and no apt-get.
            bindir = os.path.join(tmp, 'bin')
            os.mkdir(bindir)
            for tool in ['mkdir', 'flock', 'date', 'id']:
                path = shutil.which(tool)
                if path is None:
                    failures.append('%s is not installed here' % tool)
                    continue
                os.symlink(path, os.path.join(bindir, tool))
            for stub in ['cpio', 'dpkg-deb']:
                with open(os.path.join(bindir, stub), 'w') as f:
                    f.write('#!/bin/sh\nexit 0\n')
                os.chmod(os.path.join(bindir, stub), 0o755)
            env = dict(base, PATH=bindir)
            build_root = os.path.join(tmp, 'build')
            os.mkdir(build_root)
            both_modes(failures, 'real_kernel without QEMU',
                       [bash, script, '--build-root=' + build_root,
                        '--init=' + opts.get('--init', '/dev/null'),
                        '--dtb=/dev/null'], env,
                       ['qemu-system-x86_64 is not installed',
                        'apt-get install qemu-system-x86',
                        'scripts/setup-deps.sh'])
            # Linux 6.12 not built (an empty VIOMMU_CACHE_DIR): the
            # real_kernel_6_12 test's mode (needs the host tools the script
            # checks first).
            env612 = dict(base, VIOMMU_CACHE_DIR=os.path.join(tmp, 'cache'))
            build612 = os.path.join(tmp, 'build-6.12')
            os.mkdir(build612)
            if all(shutil.which(t) for t in ['qemu-system-x86_64', 'cpio']):
                both_modes(failures,
                           'real_kernel_6_12 without the 6.12 kernel',
                           [bash, script, '--kernel=6.12',
                            '--build-root=' + build612,
                            '--init=' + opts.get('--init', '/dev/null'),
                            '--dtb=/dev/null'], env612,
                           ['the Linux 6.12 kernel is not built yet',
                            'scripts/build-linux-6.12.sh'])
            both_modes(failures, 'real_kernel without dtc (--missing=)',
                       [bash, script, '--missing=dtc is not installed; '
                        'install device-tree-compiler'], dict(base),
                       ['dtc is not installed; install device-tree-compiler'])
    for f in failures:
        print('FAIL: ' + f)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
