#!/bin/busybox sh
# /init of the real-kernel test VM (tests/host/run_real_kernel.sh builds the
# initramfs; docs/real-kernel-tests.md describes the whole suite).
#
# Brings up a Linux VFIO stack (6.1: the six modules; 6.12: built in, with
# /dev/iommu and the device cdev), binds edu to vfio-pci and runs the named
# STEPS below (`run_step` on every kernel, `run_step_on K` on kernel K only;
# the kernel is `viommu_kernel=` on the command line). Each step's output is
# framed on the console by
#   @@VIOMMU-BEGIN <name>
#   ...
#   @@VIOMMU-END <name> rc=<exit code>
# and the host script splits it into <builddir>/tests/host/out/<name>.txt.
# Steps see:
#   VIOMMU_BDF    the edu device bound to vfio-pci (e.g. 0000:00:01.0)
#   VIOMMU_GROUP  its IOMMU group number (e.g. 1)
#   VIOMMU_BIN    the root of the viommu binaries: a build-dir-relative path
#                 P is at $VIOMMU_BIN/P (e.g. tests/host/type1_differential)
#   VIOMMU_KERNEL 6.1 or 6.12
# The VM powers off after the last step whatever the results.

/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t tmpfs tmp /tmp

# Keep kernel messages off the console so they cannot split a step's lines.
echo 1 > /proc/sys/kernel/printk

setup_failed() {
  echo "@@VIOMMU-SETUP-FAILED $*"
  poweroff -f
}

VIOMMU_KERNEL=6.1
for w in $(cat /proc/cmdline); do
  case "$w" in viommu_kernel=*) VIOMMU_KERNEL=${w#*=} ;; esac
done
if [ "$VIOMMU_KERNEL" = 6.1 ]; then
  for m in irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci; do
    insmod "/modules/$m.ko" || setup_failed "insmod $m"
  done
fi

VIOMMU_BDF=
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat "$d/vendor"):$(cat "$d/device")" = "0x1234:0x11e8" ]; then
    VIOMMU_BDF=$(basename "$d")
  fi
done
[ -n "$VIOMMU_BDF" ] || setup_failed "no edu device (1234:11e8)"
echo vfio-pci > "/sys/bus/pci/devices/$VIOMMU_BDF/driver_override"
echo "$VIOMMU_BDF" > /sys/bus/pci/drivers_probe
VIOMMU_GROUP=$(basename "$(readlink "/sys/bus/pci/devices/$VIOMMU_BDF/iommu_group")")
[ -c "/dev/vfio/$VIOMMU_GROUP" ] || setup_failed "no /dev/vfio/$VIOMMU_GROUP"
if [ "$VIOMMU_KERNEL" != 6.1 ]; then
  [ -c /dev/iommu ] || setup_failed "no /dev/iommu (CONFIG_IOMMUFD)"
  ls /sys/bus/pci/devices/$VIOMMU_BDF/vfio-dev/vfio* >/dev/null 2>&1 ||
    setup_failed "no vfio-dev cdev for $VIOMMU_BDF (CONFIG_VFIO_DEVICE_CDEV)"
fi
VIOMMU_BIN=/viommu
export VIOMMU_BDF VIOMMU_GROUP VIOMMU_BIN VIOMMU_KERNEL
echo
echo "@@VIOMMU-SETUP bdf=$VIOMMU_BDF group=$VIOMMU_GROUP kernel=$(uname -r)"

# run_step NAME CMD [ARGS...]: runs CMD with stdout and stderr on the
# console between the markers.
run_step() {
  name=$1
  shift
  echo "@@VIOMMU-BEGIN $name"
  "$@" 2>&1
  rc=$?
  echo "@@VIOMMU-END $name rc=$rc"
}
# run_step_on KERNEL NAME CMD [ARGS...]: run_step on that kernel only.
run_step_on() {
  [ "$1" = "$VIOMMU_KERNEL" ] || return 0
  shift
  run_step "$@"
}

# ---- STEPS: add new steps here, one run_step line each. ----------------
# A step whose output should match a model run on the build host is also
# listed in MODEL_DIFFS in run_real_kernel.sh (same name).
run_step sysfs_facts sh -c \
  'cat /sys/kernel/iommu_groups/$VIOMMU_GROUP/reserved_regions; ls /dev/vfio'
run_step type1_differential "$VIOMMU_BIN/tests/host/type1_differential" \
  --backend=linux --group="$VIOMMU_GROUP" --bdf="$VIOMMU_BDF"
run_step_on 6.12 iommufd_differential "$VIOMMU_BIN/tests/host/type1_differential" \
  --backend=linux --sequences=iommufd --group="$VIOMMU_GROUP" --bdf="$VIOMMU_BDF"
run_step_on 6.1 real_passthrough "$VIOMMU_BIN/tests/host/real_passthrough_test" \
  --gtest_color=no
run_step_on 6.1 real_capi_vfio "$VIOMMU_BIN/tests/host/real_capi_vfio_test" \
  --gtest_color=no
# The end-to-end steps again through iommufd (/dev/iommu, the device cdev).
run_step_on 6.12 real_passthrough_iommufd env VIOMMU_PASSTHROUGH_BACKEND=iommufd \
  "$VIOMMU_BIN/tests/host/real_passthrough_test" --gtest_color=no
run_step_on 6.12 real_capi_vfio_iommufd env VIOMMU_PASSTHROUGH_BACKEND=iommufd \
  "$VIOMMU_BIN/tests/host/real_capi_vfio_test" --gtest_color=no
run_step_on 6.1 type1_map_bench "$VIOMMU_BIN/tests/host/type1_map_bench" \
  --benchmark_repetitions=3 --benchmark_min_time=0.2
# ---- end of STEPS --------------------------------------------------------

echo "@@VIOMMU-DONE"
poweroff -f
