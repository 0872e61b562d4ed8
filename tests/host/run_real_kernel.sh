#!/usr/bin/env bash
# Runs viommu test programs against a REAL Linux VFIO stack: boots Debian's
# Linux 6.1 (default) or, with --kernel=6.12, the Linux 6.12 built by
# scripts/build-linux-6.12.sh (iommufd, the VFIO cdev, type1; all built in)
# under QEMU (TCG, q35 + intel-iommu + edu) with an initramfs holding
# busybox, the VFIO modules (6.1) and the viommu binaries, runs the steps of
# guest_init.sh for that kernel, and compares the outputs of the steps listed
# in MODEL_DIFFS below with the same program run against the model on this
# host. docs/real-kernel-tests.md describes it.
#
# Usage (Meson runs it as the tests host/real_kernel and host/real_kernel_6_12):
#   run_real_kernel.sh [--kernel=6.1|6.12] --build-root=DIR --init=GUEST_INIT
#                      --dtb=MODEL_DTB BIN...
# BIN are absolute paths of viommu binaries inside DIR; each is copied to
# /viommu/<its path relative to DIR> in the guest.
#
# Exit: 0 all steps rc=0 and every model diff empty; 1 a step failed, a
# marker is missing or a diff is not empty (named on stderr). When a peer is
# missing (QEMU, cpio, dtc, the kernel or busybox packages cannot be
# obtained): 77 (skip) locally, 1 (failure) when CI=true (or CI=1) is in the
# environment, so CI cannot pass a suite that did not run. Either way the
# message names what is missing and how to install it.
#
#   run_real_kernel.sh --missing=WHAT   reports WHAT as a missing peer and
#                                       exits (Meson uses it when dtc was not
#                                       found at configure time)
set -uo pipefail

kernel=6.1
build_root=
guest_init=
model_dtb=
bins=()
missing_at_configure=
for a in "$@"; do
  case "$a" in
    --kernel=*) kernel=${a#*=} ;;
    --build-root=*) build_root=${a#*=} ;;
    --init=*) guest_init=${a#*=} ;;
    --dtb=*) model_dtb=${a#*=} ;;
    --missing=*) missing_at_configure=${a#*=} ;;
    --*) echo "unknown option $a" >&2; exit 2 ;;
    *) bins+=("$a") ;;
  esac
done

# A missing peer: a skip locally, a failure in CI (see the top).
peer_missing() {
  case "${CI:-}" in
    true | TRUE | True | 1)
      echo "FAIL: real-kernel suite: $* (CI=true: a missing peer is a failure, not a skip)" >&2
      exit 1 ;;
  esac
  echo "SKIP: real-kernel suite: $*" >&2
  exit 77
}
[ -z "$missing_at_configure" ] || peer_missing "$missing_at_configure"
case "$kernel" in
  6.1 | 6.12) ;;
  *) echo "--kernel must be 6.1 or 6.12" >&2; exit 2 ;;
esac

[ -n "$build_root" ] && [ -n "$guest_init" ] || { echo "usage: $0 --build-root=DIR --init=FILE --dtb=FILE BIN..." >&2; exit 2; }

work=$build_root/tests/host
cache=$work/cache
# Per-kernel outputs: out/, initramfs/, initrd.gz, console.log (6.1) and
# out-6.12/, initramfs-6.12/, ... (6.12).
sfx=
[ "$kernel" = 6.1 ] || sfx=-$kernel
out=$work/out$sfx
mkdir -p "$cache" "$out"
# One run per build tree at a time: runs share the cache, the initramfs
# and out/ (another engineer's `meson test` may be running).
exec 9>"$work/.lock"
flock 9

# Where a missing download comes from: apt-get download needs a Debian 12
# (bookworm) main source and the network, or the .deb placed in the cache.
fetch_hint() {
  echo "apt-get download $1 failed: it needs network access and a Debian 12 (bookworm) main source in /etc/apt/sources.list (then apt-get update); or put ${1}_*.deb into $cache/"
}
fail() { echo "FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
t_start=$(now)

# ---- MODEL_DIFFS: guest steps whose output must equal a model run here. ----
# model_diff STEP CMD [ARGS...]: runs CMD on the build host into
# out/STEP.model.txt and diffs it against the guest's out/STEP.txt (into
# out/STEP.diff), ignoring lines that start with '#'.
# On 6.12 the model runs as KernelVersion::k6_12 (docs/real-kernel-tests.md,
# "Two kernels") and the iommufd sequences run too.
model_diffs() {
  if [ "$kernel" = 6.1 ]; then
    model_diff type1_differential "$work/type1_differential" \
      --backend=model --dtb="$model_dtb"
  else
    model_diff type1_differential "$work/type1_differential" \
      --backend=model --kernel=6.12 --dtb="$model_dtb"
    model_diff iommufd_differential "$work/type1_differential" \
      --backend=model --kernel=6.12 --sequences=iommufd --dtb="$model_dtb"
  fi
}
# ---- end of MODEL_DIFFS ------------------------------------------------------

# ---- Host tools --------------------------------------------------------------
apt_updated=false
apt_update_once() {
  $apt_updated && return 1
  apt_updated=true
  [ "$(id -u)" = 0 ] || return 1
  echo "apt-get update" >&2
  apt-get update -qq >&2
}

need_tool() {  # need_tool BINARY PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  local how="install the Debian package $2: scripts/setup-deps.sh, or sudo apt-get install $2"
  [ "$(id -u)" = 0 ] || peer_missing "$1 is not installed; $how"
  echo "installing $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2 ||
    { apt_update_once && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2; } ||
    peer_missing "$1 is not installed and apt-get install $2 failed; $how"
  command -v "$1" >/dev/null 2>&1 || peer_missing "$1 is still missing after apt-get install $2"
}
need_tool cpio cpio
need_tool qemu-system-x86_64 qemu-system-x86
need_tool dpkg-deb dpkg
need_tool gzip gzip
need_tool timeout coreutils
need_tool ldd libc-bin
need_tool diff diffutils
need_tool awk mawk

# ---- Debian packages into the cache (downloaded, never installed) -----------
# fetch_deb PACKAGE: prints the path of PACKAGE_*.deb in the cache,
# downloading it with apt-get download (exact name, from inside the cache
# dir) when missing; `apt-get update` once if the first try fails.
fetch_deb() {
  local pkg=$1 deb
  deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n1)
  if [ -z "$deb" ]; then
    echo "downloading $pkg" >&2
    (cd "$cache" && apt-get download -qq "$pkg" >&2) ||
      { apt_update_once && (cd "$cache" && apt-get download -qq "$pkg" >&2); } ||
      return 1
    deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n1)
  fi
  [ -n "$deb" ] && echo "$deb"
}

# The kernel. 6.12: the image scripts/build-linux-6.12.sh built (it runs
# from scripts/setup-deps.sh, i.e. `make deps`, once per machine; a build
# here would not fit the test's timeout). 6.1: only vmlinuz and the six
# modules are unpacked from Debian's package (the whole package is 400 MB
# unpacked).
build_612=$(dirname "$(readlink -f "$0")")/../../scripts/build-linux-6.12.sh
kdir=$cache/kernel
if [ "$kernel" = 6.12 ]; then
  "$build_612" --check ||
    peer_missing "the Linux 6.12 kernel is not built yet: run scripts/build-linux-6.12.sh (make deps runs it; it downloads linux-source-6.12 from bookworm-backports, about 150 MB, and builds bzImage at nice 19, about 15 min on 2 busy cores)"
  vmlinuz=$("$build_612" --print)
elif [ ! -f "$kdir/.done" ]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
         awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$kpkg" ]; then
    apt_update_once
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [ -n "$kpkg" ] || peer_missing "apt-cache knows no linux-image-amd64 (the Linux 6.1 kernel package): add a Debian 12 (bookworm) main source to /etc/apt/sources.list and run apt-get update"
  kdeb=$(fetch_deb "$kpkg") || peer_missing "the kernel package $kpkg: $(fetch_hint "$kpkg")"
  rm -rf "$kdir"
  mkdir -p "$kdir"
  echo "unpacking $(basename "$kdeb")" >&2
  kver=${kpkg#linux-image-}
  m=./lib/modules/$kver/kernel
  dpkg-deb --fsys-tarfile "$kdeb" |
    tar -x -C "$kdir" "./boot/vmlinuz-$kver" "$m/virt/lib/irqbypass.ko" \
      "$m/drivers/vfio/vfio.ko" "$m/drivers/vfio/vfio_iommu_type1.ko" \
      "$m/drivers/vfio/vfio_virqfd.ko" "$m/drivers/vfio/pci/vfio-pci-core.ko" \
      "$m/drivers/vfio/pci/vfio-pci.ko" ||
    peer_missing "cannot unpack vmlinuz and the VFIO modules from $kdeb (delete it and rerun to download it again)"
  touch "$kdir/.done"
fi
if [ "$kernel" = 6.1 ]; then
  vmlinuz=$(ls "$kdir"/boot/vmlinuz-* 2>/dev/null | head -n1)
  [ -n "$vmlinuz" ] || peer_missing "no vmlinuz in $kdir (delete $kdir and rerun to unpack the kernel package again)"
  moddir=$(ls -d "$kdir"/lib/modules/*/kernel | head -n1)
fi

bbdir=$cache/busybox
if [ ! -f "$bbdir/.done" ]; then
  bbdeb=$(fetch_deb busybox-static) || peer_missing "the package busybox-static: $(fetch_hint busybox-static)"
  rm -rf "$bbdir"
  dpkg -x "$bbdeb" "$bbdir" || peer_missing "cannot unpack $bbdeb (delete it and rerun to download it again)"
  touch "$bbdir/.done"
fi
busybox=$bbdir/bin/busybox
[ -x "$busybox" ] || peer_missing "no bin/busybox in $bbdir (delete $bbdir and rerun)"

# ---- The initramfs -------------------------------------------------------------
root=$work/initramfs$sfx
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,modules,viommu}
cp "$busybox" "$root/bin/busybox"
cp "$guest_init" "$root/init"
chmod 755 "$root/init"
# 6.12 has everything built in: no modules.
[ "$kernel" = 6.1 ] &&
for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1 \
         drivers/vfio/vfio_virqfd drivers/vfio/pci/vfio-pci-core \
         drivers/vfio/pci/vfio-pci; do
  cp "$moddir/$m.ko" "$root/modules/" || peer_missing "module $m.ko missing from $kdir (delete $kdir and rerun to unpack the kernel package again)"
done

copy_abs() {  # copy_abs FILE: FILE at the same absolute path in the guest
  [ -e "$root$1" ] && return 0
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}
build_root=$(readlink -f "$build_root")
for b in "${bins[@]}"; do
  # Meson passes build targets relative to the build root (its cwd).
  b=$(cd "$build_root" && readlink -f "$b")
  case "$b" in
    "$build_root"/*) rel=${b#"$build_root"/} ;;
    *) fail "binary $b is not inside $build_root" ;;
  esac
  mkdir -p "$root/viommu/$(dirname "$rel")"
  cp "$b" "$root/viommu/$rel"
  # Shared libraries as the host resolves them, plus the dynamic loader.
  ldd "$b" | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(0x/ {print $1}' |
    while read -r lib; do copy_abs "$lib" || exit 1; done ||
    fail "copying the libraries of $b"
done
copy_abs /lib64/ld-linux-x86-64.so.2 || fail "no /lib64/ld-linux-x86-64.so.2"
initrd=$work/initrd$sfx.gz
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd" ||
  fail "building $initrd"

# ---- Boot ----------------------------------------------------------------------
console=$work/console$sfx.log
echo "booting $(basename "$vmlinuz") ($(du -h "$initrd" | cut -f1) initramfs)" >&2
t_boot=$(now)
timeout 240 qemu-system-x86_64 -machine q35,kernel-irqchip=split -accel tcg \
  -m 1G -smp 1 -device intel-iommu,caching-mode=on,intremap=on -device edu \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 intel_iommu=on iommu=nopt quiet panic=-1 viommu_kernel=$kernel" \
  -nographic -no-reboot -nodefaults -serial stdio </dev/null >"$console" 2>&1
qemu_rc=$?
t_end_boot=$(now)
# Console text without CRs and terminal escapes (SeaBIOS clears the screen).
tr -d '\r' <"$console" |
  sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[A-Za-z]//g' >"$console.txt"

tail_console() {
  echo "---- console tail ($console) ----" >&2
  tail -n 40 "$console.txt" >&2
}
[ $qemu_rc = 124 ] && { tail_console; fail "the VM did not power off within 240 s"; }
if grep -q '^@@VIOMMU-SETUP-FAILED' "$console.txt"; then
  tail_console
  fail "guest setup: $(sed -n 's/^@@VIOMMU-SETUP-FAILED //p' "$console.txt")"
fi
grep -q '^@@VIOMMU-SETUP ' "$console.txt" || { tail_console; fail "the guest never finished its setup"; }
grep '^@@VIOMMU-SETUP ' "$console.txt" >&2

# ---- Steps ---------------------------------------------------------------------
# The expected steps are the run_step lines of guest_init.sh's STEPS list
# (every kernel) and its `run_step_on KERNEL NAME` lines for this kernel.
steps=$(awk -v k="$kernel" '/^# ---- STEPS/ {on=1; next} /^# ---- end of STEPS/ {on=0}
             on && $1 == "run_step" {print $2}
             on && $1 == "run_step_on" && $2 == k {print $3}' "$guest_init")
failed=()
for s in $steps; do
  awk -v s="$s" '$0 == "@@VIOMMU-BEGIN " s {on=1; next}
                 index($0, "@@VIOMMU-END " s " rc=") == 1 {on=0}
                 on {print}' "$console.txt" >"$out/$s.txt"
  rc=$(sed -n "s/^@@VIOMMU-END $s rc=\\([0-9]*\\)\$/\\1/p" "$console.txt")
  if [ -z "$rc" ]; then
    echo "step $s: no end marker" >&2
    failed+=("$s(missing)")
  elif [ "$rc" != 0 ]; then
    echo "step $s: rc=$rc; output:" >&2
    tail -n 30 "$out/$s.txt" >&2
    failed+=("$s(rc=$rc)")
  elif grep -q '^\[  SKIPPED \]' "$out/$s.txt"; then
    # A gtest step that skipped inside the VM tested nothing: a failure.
    echo "step $s: tests were skipped inside the VM:" >&2
    grep '^\[  SKIPPED \]' "$out/$s.txt" >&2
    failed+=("$s(skipped)")
  else
    echo "step $s: ok ($(wc -l <"$out/$s.txt") lines in out/$s.txt)" >&2
    # Benchmark steps (*_bench): their figures go into the test log.
    case "$s" in *_bench) sed 's/^/  | /' "$out/$s.txt" >&2 ;; esac
  fi
done

model_diff() {
  local s=$1
  shift
  if "$@" >"$out/$s.model.txt" 2>&1; then :; else
    echo "model run of $s failed (rc=$?):" >&2
    tail -n 30 "$out/$s.model.txt" >&2
    failed+=("$s(model)")
    return
  fi
  # Lines starting with '#' are informational (device-specific facts).
  if diff -u --label "model: $s" --label "linux: $s" \
       <(grep -v '^#' "$out/$s.model.txt") <(grep -v '^#' "$out/$s.txt") \
       >"$out/$s.diff"; then
    echo "diff $s: model and kernel agree" >&2
  else
    echo "diff $s: model and kernel DIFFER (- model, + kernel):" >&2
    cat "$out/$s.diff" >&2
    failed+=("$s(diff)")
  fi
}
model_diffs

t_end=$(now)
awk -v a="$t_start" -v b="$t_boot" -v c="$t_end_boot" -v d="$t_end" 'BEGIN {
  printf "time: %.1f s total (%.1f s prepare, %.1f s VM, %.1f s checks)\n",
         d - a, b - a, c - b, d - c }' >&2
if [ ${#failed[@]} -ne 0 ]; then
  [ -n "$steps" ] && grep -q '^@@VIOMMU-DONE' "$console.txt" || tail_console
  fail "${failed[*]}"
fi
echo "PASS: $(echo $steps | wc -w) steps on Linux $kernel" >&2
exit 0
