// tests/fakes/fake_model_device.h — a trivial ModelDeviceOps for ModelHost
// tests and benchmarks: BAR0 is 256 bytes of plain registers, BAR2 a page
// of mmap-able memory, config space 256 bytes; it records resets, the
// attached domain and SET_IRQS calls, and DMAs through the domain on
// request.
//
//   FakeModelDevice* dev = nullptr;
//   ModelHostOptions o;
//   o.device_factory = FakeModelDevice::Factory(&devices);  // collects them
//
// Thread-safety: test thread only.
#ifndef TESTS_FAKES_FAKE_MODEL_DEVICE_H_
#define TESTS_FAKES_FAKE_MODEL_DEVICE_H_

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "viommu/vfio/host/model/model_device_ops.h"

namespace viommu::vfio::model {

class FakeModelDevice final : public ModelDeviceOps {
 public:
  static constexpr uint64_t kBar0Size = 256;
  static constexpr uint64_t kBar2Size = 4096;
  static constexpr uint64_t kConfigSize = 256;

  explicit FakeModelDevice(const HostDeviceDesc& desc) : desc_(desc) {
    bar2_ = mmap(nullptr, kBar2Size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  ~FakeModelDevice() override { munmap(bar2_, kBar2Size); }

  // A factory that also records every device it makes in `*made`.
  static ModelDeviceFactory Factory(
      std::map<std::string, FakeModelDevice*>* made) {
    return [made](const HostDeviceDesc& d) {
      auto dev = std::make_unique<FakeModelDevice>(d);
      if (made != nullptr) (*made)[d.address.ToString()] = dev.get();
      return dev;
    };
  }

  int GetRegionInfo(uint32_t index, uapi::vfio_region_info* out) override {
    out->offset = uapi::PciIndexToOffset(index);
    switch (index) {
      case uapi::kPciBar0RegionIndex:
        out->size = kBar0Size;
        out->flags = uapi::kRegionInfoFlagRead | uapi::kRegionInfoFlagWrite;
        return 0;
      case uapi::kPciBar2RegionIndex:
        out->size = kBar2Size;
        out->flags = uapi::kRegionInfoFlagRead | uapi::kRegionInfoFlagWrite |
                     uapi::kRegionInfoFlagMmap;
        return 0;
      case uapi::kPciConfigRegionIndex:
        out->size = kConfigSize;
        out->flags = uapi::kRegionInfoFlagRead | uapi::kRegionInfoFlagWrite;
        return 0;
      default:
        out->size = 0;
        out->flags = 0;
        return 0;
    }
  }
  int64_t RegionRead(uint64_t offset, void* buf, uint64_t len) override {
    uint8_t* p = Locate(offset, len);
    if (p == nullptr) return -EINVAL;
    std::memcpy(buf, p, len);
    return static_cast<int64_t>(len);
  }
  int64_t RegionWrite(uint64_t offset, const void* buf, uint64_t len) override {
    uint8_t* p = Locate(offset, len);
    if (p == nullptr) return -EINVAL;
    std::memcpy(p, buf, len);
    return static_cast<int64_t>(len);
  }
  [[nodiscard]] absl::StatusOr<void*> Mmap(uint64_t offset,
                                           uint64_t len) override {
    if (offset != uapi::PciIndexToOffset(uapi::kPciBar2RegionIndex) ||
        len > kBar2Size) {
      return absl::InvalidArgumentError("only BAR2 is mmap-able");
    }
    ++mmaps;
    return bar2_;
  }
  void Munmap(void*, uint64_t) override { --mmaps; }
  int Reset() override {
    ++resets;
    return 0;
  }
  int GetIrqInfo(uint32_t index, uapi::vfio_irq_info* out) override {
    out->flags = uapi::kIrqInfoEventfd;
    out->count = index <= uapi::kPciMsiIrqIndex ? 1 : 0;
    return 0;
  }
  int SetIrqs(const uapi::vfio_irq_set& set, const uint8_t*) override {
    last_irq_set = set;
    return 0;
  }
  void AttachDomain(HostIommuDomain* d) override {
    domain = d;
    ++attach_calls;
  }

  // A device write of `len` bytes at `iova`: false on a host IOMMU fault.
  bool DmaWrite(uint64_t iova, const void* src, uint64_t len) {
    if (domain == nullptr) return false;
    auto hva = domain->Translate(iova, len, /*write=*/true);
    if (!hva) return false;
    std::memcpy(reinterpret_cast<void*>(*hva), src, len);
    return true;
  }

  const HostDeviceDesc& desc() const { return desc_; }
  HostIommuDomain* domain = nullptr;
  int attach_calls = 0;
  int resets = 0;
  int mmaps = 0;
  uapi::vfio_irq_set last_irq_set{};

 private:
  uint8_t* Locate(uint64_t offset, uint64_t len) {
    const uint32_t index = static_cast<uint32_t>(offset >> 40);
    const uint64_t off = offset & ((uint64_t{1} << 40) - 1);
    auto fits = [&](uint64_t size) { return off <= size && len <= size - off; };
    if (index == uapi::kPciBar0RegionIndex && fits(kBar0Size)) {
      return bar0_ + off;
    }
    if (index == uapi::kPciBar2RegionIndex && fits(kBar2Size)) {
      return static_cast<uint8_t*>(bar2_) + off;
    }
    if (index == uapi::kPciConfigRegionIndex && fits(kConfigSize)) {
      return config_ + off;
    }
    return nullptr;
  }

  HostDeviceDesc desc_;
  uint8_t bar0_[kBar0Size] = {};
  uint8_t config_[kConfigSize] = {};
  void* bar2_;
};

}  // namespace viommu::vfio::model

#endif  // TESTS_FAKES_FAKE_MODEL_DEVICE_H_
