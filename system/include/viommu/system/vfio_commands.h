// viommu/system/vfio_commands.h — the QMP side of VFIO passthrough:
// `x-query-vfio` (ARCHITECTURE.md §5, a CONTRACT), the
// VFIO_IOVA_RANGES_CHANGED event, and the debug command
// `x-debug-vfio-host` / `x-debug-vfio-fail-map` (model host state and
// fault injection for tests; not a contract).
//
//   QmpDispatcher qmp;
//   RegisterVfioCommands(&qmp, vm.get());   // RegisterMachineCommands does it
//
// x-query-vfio returns {"containers": [{"id", "backend" ("type1" |
// "iommufd"), "address-space", "devices" (host BDFs), "iova-ranges"
// [{"start","end"}], "mappings", "dma-avail", "skipped" [{"start","end",
// "reason"}]}]} in container id order; every number is a JSON integer,
// addresses unsigned 64-bit (inclusive ends).
// VFIO_IOVA_RANGES_CHANGED data: {"container": ID, "iova-ranges": [...]}.
// x-query-vfio-devices returns {"devices": [{"id", "host" (BDF), "devfn",
// "device-reset" (the host offers VFIO_DEVICE_RESET), "irq-mode" ("none" |
// "intx" | "msi": what is registered with the host now), "msi-delivered",
// "intx-asserted", "intx-unmasked", "host-errors" (failed host calls after
// creation), "last-host-error" (text, "" if none)}]} in attach order (the
// VfioPciDevice stats; works with either host backend).
// x-debug-vfio-host returns {"host-mappings" (type1 DMA mappings the model
// host holds over every container), "locked-pages", "errors" (container
// errors after initialisation), "last-error" (text, "" if none),
// "devices": [{"host", "dma-completed", "iommu-faults", "last-fault-iova"
// (-1 if none)}]}.
// x-debug-vfio-fail-map {"n": N, "errno": E (default 12, ENOMEM)}: the
// model host's N-th type1 MAP_DMA from now fails with E (n = 0 disarms);
// for tests of the error policy after initialisation.
#ifndef VIOMMU_SYSTEM_VFIO_COMMANDS_H_
#define VIOMMU_SYSTEM_VFIO_COMMANDS_H_

#include <string>
#include <vector>

#include "viommu/system/qmp/qmp_dispatcher.h"
#include "viommu/system/vm.h"
#include "viommu/vfio/container_types.h"

namespace viommu::system {

// `qmp` and `vm` are not owned and outlive the registration's use.
void RegisterVfioCommands(QmpDispatcher* qmp, Vm* vm);

// The x-query-vfio "return" value: vfio::VfioQueryJson
// (viommu/vfio/vfio_query_json.h), shared with the C API.
// The x-query-vfio-devices "return" value as JSON text.
std::string VfioDevicesJson(const VfioPassthrough& vfio);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_VFIO_COMMANDS_H_
