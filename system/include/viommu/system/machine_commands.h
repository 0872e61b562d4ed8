// viommu/system/machine_commands.h — the QMP commands of build/viommu:
// query-status, quit, system_reset, device_add, device_del (with
// DEVICE_DELETED), the RESET event of a guest reset (port 0xcf9), and
// x-query-msi (what the machine's MSI window at 0xfee00000 received, for
// tests: qtest's irq_intercept_in sees GSIs only). x-query-msi returns
// {"total": N}; with {"requester-id": R} also "count" (messages from R) and,
// if any, "last": {"address", "data"} (hw::MsiController's record; a
// device's requester id on bus 0 is its devfn).
//
//   QmpDispatcher qmp;
//   RegisterMachineCommands(&qmp, vm.get(), [&] { g_main_loop_quit(loop); });
//
// Unlike QEMU's q35, whose root bus refuses hot-plug, viommu plugs and
// unplugs PCI devices on bus 0 at once: device_del removes the device and
// emits DEVICE_DELETED before answering (QEMU waits for the guest).
#ifndef VIOMMU_SYSTEM_MACHINE_COMMANDS_H_
#define VIOMMU_SYSTEM_MACHINE_COMMANDS_H_

#include <functional>

#include "viommu/system/qmp/qmp_dispatcher.h"
#include "viommu/system/vm.h"

namespace viommu::system {

// `qmp` and `vm` are not owned and must outlive the registration's use
// (the machine's guest-reset handler points at both).
void RegisterMachineCommands(QmpDispatcher* qmp, Vm* vm,
                             std::function<void()> quit);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_MACHINE_COMMANDS_H_
