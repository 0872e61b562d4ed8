// viommu/vfio/host/model/host_irq_sink.h — where a simulated host device's
// interrupts go: the model's stand-in for the eventfds that
// VFIO_DEVICE_SET_IRQS (ACTION_TRIGGER | DATA_EVENTFD) installs.
//
//   class Recorder final : public HostIrqSink {
//     void Signal(uint32_t index, uint32_t vector, int32_t eventfd) override {
//       signals.push_back({index, vector, eventfd});
//     }
//   };
//   device->set_irq_sink(&recorder);
//
// The device calls Signal once per interrupt it sends, with the eventfd
// number the user installed for (index, vector); it calls nothing for an
// index without an installed eventfd. INTx is level-triggered and
// automasked as in vfio-pci: one Signal per assertion, then nothing until
// the user unmasks (SET_IRQS ACTION_UNMASK), which signals again if the
// line is still asserted. MSI signals once per message.
// EventfdIrqSink writes to the real eventfd (what the kernel does).
// Thread-safety: called on the device's control context.
#ifndef VIOMMU_VFIO_HOST_MODEL_HOST_IRQ_SINK_H_
#define VIOMMU_VFIO_HOST_MODEL_HOST_IRQ_SINK_H_

#include <cstdint>

namespace viommu::vfio::model {

class HostIrqSink {
 public:
  HostIrqSink() = default;
  HostIrqSink(const HostIrqSink&) = delete;
  HostIrqSink& operator=(const HostIrqSink&) = delete;
  virtual ~HostIrqSink() = default;

  // `index` is a VFIO irq index (uapi::kPciIntxIrqIndex, kPciMsiIrqIndex),
  // `vector` the sub-index, `eventfd` the fd the user installed.
  virtual void Signal(uint32_t index, uint32_t vector, int32_t eventfd) = 0;
};

// Adds 1 to the eventfd counter with write(2), as the kernel's
// eventfd_signal; a failed write is ignored (the kernel cannot fail it).
class EventfdIrqSink final : public HostIrqSink {
 public:
  void Signal(uint32_t index, uint32_t vector, int32_t eventfd) override;
};

}  // namespace viommu::vfio::model

#endif  // VIOMMU_VFIO_HOST_MODEL_HOST_IRQ_SINK_H_
