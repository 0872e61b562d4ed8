// The C API's vIOMMU PCI function (virtio-iommu-pci): plugging, config
// access and the locked fault sink. capi/viommu_function.h.
#include "capi/viommu_function.h"

#include <utility>

#include "viommu/util/check.h"

namespace viommu::capi {

void ReentrantLock::Lock() {
  const std::thread::id self = std::this_thread::get_id();
  if (owner_.load(std::memory_order_relaxed) == self) {
    ++depth_;
    return;
  }
  mu_.lock();
  owner_.store(self, std::memory_order_relaxed);
  depth_ = 1;
}

void ReentrantLock::Unlock() {
  if (--depth_ > 0) return;
  owner_.store(std::thread::id(), std::memory_order_relaxed);
  mu_.unlock();
}

absl::StatusOr<std::unique_ptr<ViommuFunction>> ViommuFunction::Create(
    memory::MemorySystem* sys, virtio_iommu::VirtioIommu* model, uint8_t devfn,
    std::shared_ptr<memory::MemoryRegion> memory_root,
    std::shared_ptr<memory::MemoryRegion> io_root, IntxFn intx_fn) {
  std::unique_ptr<ViommuFunction> fn(
      new ViommuFunction(model, devfn, std::move(intx_fn)));
  std::shared_ptr<memory::MemoryRegion> dma_root = memory_root;
  fn->bus_ = std::make_unique<hw::pci::PciBus>(
      sys, &fn->clock_, std::move(memory_root), std::move(io_root),
      std::move(dma_root));
  fn->bus_->SetIntxSink(&fn->intx_, [](uint8_t, int pin) { return pin; });
  absl::StatusOr<std::unique_ptr<hw::pci::PciDevice>> dev =
      model->CreateFunction();
  if (!dev.ok()) return dev.status();
  absl::StatusOr<hw::pci::PciDevice*> plugged =
      fn->bus_->Plug(*std::move(dev), devfn);
  if (!plugged.ok()) return plugged.status();
  // Realize made the function the model's fault sink; interpose.
  fn->inner_ = model->fault_sink();
  model->SetFaultSink(&fn->sink_);
  return fn;
}

ViommuFunction::~ViommuFunction() {
  Hold hold(this);
  if (model_->fault_sink() == &sink_) model_->SetFaultSink(inner_);
  bus_.reset();  // unrealizes the function: it drops itself as the sink
}

uint32_t ViommuFunction::config_size() const {
  const hw::pci::PciDevice* dev = bus_->Find(devfn_);
  return dev != nullptr ? dev->config_size() : 0;
}

uint32_t ViommuFunction::ConfigRead(uint32_t offset, unsigned size) {
  return bus_->ConfigRead(devfn_, offset, size);
}

void ViommuFunction::ConfigWrite(uint32_t offset, uint32_t value,
                                 unsigned size) {
  bus_->ConfigWrite(devfn_, offset, value, size);
}

void ViommuFunction::Reset() {
  Hold hold(this);
  bus_->Reset();
}

bool ViommuFunction::LockedFaultSink::DeliverFault(
    std::span<const uint8_t, virtio_iommu::kFaultSize> record) {
  Hold hold(fn_);
  return fn_->inner_ != nullptr && fn_->inner_->DeliverFault(record);
}

}  // namespace viommu::capi
