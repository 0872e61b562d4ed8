// viommu/system/trace_commands.h — QEMU's QMP trace commands over
// viommu/util/trace.h (docs/tracing.md):
//
//   trace-event-get-state {"name": PATTERN}
//     -> [{"name": N, "state": "enabled"|"disabled", "vcpu": false}, ...]
//   trace-event-set-state {"name": PATTERN, "enable": BOOL}  -> {}
//
// A name without a glob character that names no event is the error
// `unknown event "NAME"` (GenericError), as in QEMU 7.2; a pattern that
// matches nothing is an empty list / no-op.
//
//   QmpDispatcher qmp;
//   RegisterTraceCommands(&qmp);
#ifndef VIOMMU_SYSTEM_TRACE_COMMANDS_H_
#define VIOMMU_SYSTEM_TRACE_COMMANDS_H_

#include "viommu/system/qmp/qmp_dispatcher.h"

namespace viommu::system {

// `qmp` is not owned.
void RegisterTraceCommands(QmpDispatcher* qmp);

}  // namespace viommu::system

#endif  // VIOMMU_SYSTEM_TRACE_COMMANDS_H_
