// ModelHostDevice: creation, regions (BAR0, BAR2, config), mmap, reset and
// DMA through the host IOMMU domain. Interrupts: host_device_irq.cc.
#include "viommu/vfio/host/model/host_device.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "vfio/host/model/host_pci_config.h"
#include "viommu/util/le_bytes.h"

namespace viommu::vfio::model {
namespace {

constexpr uint64_t kRegionOffsetMask = (uint64_t{1} << 40) - 1;

uint64_t RoundUpToPage(uint64_t len) {
  return (len + kHostPageSize - 1) & ~(kHostPageSize - 1);
}

// The largest of 8/4/2/1 that `offset` is aligned to and `left` holds.
unsigned ChunkSize(uint64_t offset, uint64_t left, unsigned max) {
  for (unsigned s = max; s > 1; s /= 2) {
    if (offset % s == 0 && left >= s) return s;
  }
  return 1;
}

}  // namespace

// The engine's view of its device.
class ModelHostDevice::Bus final : public devcore::EduEngine::Bus {
 public:
  explicit Bus(ModelHostDevice* dev) : dev_(dev) {}
  void Dma(uint64_t iova, uint8_t* buf, uint64_t len, bool to_ram) override {
    dev_->Dma(iova, buf, len, to_ram);
  }
  void IrqRaised() override { dev_->IrqRaised(); }
  void IrqCleared() override { dev_->IrqCleared(); }

 private:
  ModelHostDevice* dev_;  // not owned, owns this
};

absl::StatusOr<std::unique_ptr<ModelHostDevice>> ModelHostDevice::Create(
    const HostDeviceDesc& desc, ProcessMemory* memory, const Options& options) {
  const uint64_t size = desc.bar2_size;
  if (size < kHostPageSize || (size & (size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("host device %s: bar2_size 0x%x is not a power of two "
                        ">= 4 KiB",
                        desc.address.ToString(), size));
  }
  std::unique_ptr<ModelHostDevice> dev(
      new ModelHostDevice(desc, memory, options));
  const std::string name = "viommu-bar2-" + desc.address.ToString();
  dev->bar2_fd_ = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (dev->bar2_fd_ < 0 ||
      ftruncate(dev->bar2_fd_, static_cast<off_t>(size)) != 0) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("host device %s: BAR2 memfd of 0x%x bytes: %s",
                        desc.address.ToString(), size, std::strerror(errno)));
  }
  void* p =
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->bar2_fd_, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("host device %s: mmap of BAR2 (0x%x bytes): %s",
                        desc.address.ToString(), size, std::strerror(errno)));
  }
  dev->bar2_ = static_cast<uint8_t*>(p);
  if (memory != nullptr) {
    memory->AddDeviceMemory(reinterpret_cast<uint64_t>(p), size);
  }
  return dev;
}

ModelDeviceFactory ModelHostDevice::Factory(const Options& options) {
  return [options](const HostDeviceDesc& desc)
             -> absl::StatusOr<std::unique_ptr<ModelDeviceOps>> {
    absl::StatusOr<std::unique_ptr<ModelHostDevice>> dev =
        Create(desc, /*memory=*/nullptr, options);
    if (!dev.ok()) return dev.status();
    return std::unique_ptr<ModelDeviceOps>(std::move(*dev));
  };
}

ModelHostDevice::ModelHostDevice(const HostDeviceDesc& desc,
                                 ProcessMemory* memory, const Options& options)
    : desc_(desc),
      memory_(memory),
      irq_sink_(options.irq_sink),
      bus_(std::make_unique<Bus>(this)),
      config_(std::make_unique<HostPciConfig>(desc, kBar0Size)),
      engine_(std::make_unique<devcore::EduEngine>(bus_.get(), options.timers,
                                                   options.dma_mask)) {}

ModelHostDevice::~ModelHostDevice() {
  engine_.reset();  // cancels the DMA timer before the rest goes
  if (bar2_ != nullptr) {
    if (memory_ != nullptr) {
      memory_->RemoveDeviceMemory(reinterpret_cast<uint64_t>(bar2_));
    }
    munmap(bar2_, desc_.bar2_size);
  }
  if (bar2_fd_ >= 0) close(bar2_fd_);
}

uint16_t ModelHostDevice::command() const { return config_->command(); }
uint32_t ModelHostDevice::irq_status() const { return engine_->irq_status(); }
bool ModelHostDevice::dma_pending() const { return engine_->dma_pending(); }
uint64_t ModelHostDevice::refused_dma_count() const {
  return engine_->refused_dma_count();
}

int ModelHostDevice::GetRegionInfo(uint32_t index,
                                   uapi::vfio_region_info* out) {
  if (index >= uapi::kPciNumRegions || index == uapi::kPciVgaRegionIndex) {
    return -EINVAL;
  }
  out->offset = uapi::PciIndexToOffset(index);
  out->flags = 0;
  out->size = 0;
  constexpr uint32_t kRw =
      uapi::kRegionInfoFlagRead | uapi::kRegionInfoFlagWrite;
  switch (index) {
    case uapi::kPciBar0RegionIndex:
      out->size = kBar0Size;
      out->flags = kRw;
      break;
    case uapi::kPciBar2RegionIndex:
      out->size = desc_.bar2_size;
      out->flags = kRw | uapi::kRegionInfoFlagMmap;
      break;
    case uapi::kPciConfigRegionIndex:
      out->size = kConfigSize;
      out->flags = kRw;
      break;
    default:
      break;  // BAR1, BAR3 (BAR2's upper half), BAR4, BAR5, ROM: size 0
  }
  return 0;
}

int64_t ModelHostDevice::RegionRead(uint64_t offset, void* buf, uint64_t len) {
  const uint32_t index = static_cast<uint32_t>(offset >> 40);
  const uint64_t off = offset & kRegionOffsetMask;
  auto* bytes = static_cast<uint8_t*>(buf);
  switch (index) {
    case uapi::kPciBar0RegionIndex:
      return Bar0Access(off, bytes, len, /*write=*/false);
    case uapi::kPciBar2RegionIndex:
      if (!(command() & pcicfg::kCommandMemory)) return -EIO;
      if (off > desc_.bar2_size || len > desc_.bar2_size - off) return -EINVAL;
      std::memcpy(bytes, bar2_ + off, len);
      return static_cast<int64_t>(len);
    case uapi::kPciConfigRegionIndex:
      return ConfigAccess(off, bytes, len, /*write=*/false);
    default:
      return -EINVAL;
  }
}

int64_t ModelHostDevice::RegionWrite(uint64_t offset, const void* buf,
                                     uint64_t len) {
  const uint32_t index = static_cast<uint32_t>(offset >> 40);
  const uint64_t off = offset & kRegionOffsetMask;
  // The access helpers only read `buf` when writing.
  auto* bytes = static_cast<uint8_t*>(const_cast<void*>(buf));
  switch (index) {
    case uapi::kPciBar0RegionIndex:
      return Bar0Access(off, bytes, len, /*write=*/true);
    case uapi::kPciBar2RegionIndex:
      if (!(command() & pcicfg::kCommandMemory)) return -EIO;
      if (off > desc_.bar2_size || len > desc_.bar2_size - off) return -EINVAL;
      std::memcpy(bar2_ + off, bytes, len);
      return static_cast<int64_t>(len);
    case uapi::kPciConfigRegionIndex:
      return ConfigAccess(off, bytes, len, /*write=*/true);
    default:
      return -EINVAL;
  }
}

int64_t ModelHostDevice::Bar0Access(uint64_t offset, uint8_t* buf, uint64_t len,
                                    bool write) {
  if (!(command() & pcicfg::kCommandMemory)) return -EIO;
  if (offset > kBar0Size || len > kBar0Size - offset) return -EINVAL;
  for (uint64_t done = 0; done < len;) {
    const unsigned size = ChunkSize(offset + done, len - done, 8);
    if (write) {
      engine_->Write(offset + done, LoadLe(buf + done, size), size);
    } else {
      StoreLe(buf + done, engine_->Read(offset + done, size), size);
    }
    done += size;
  }
  return static_cast<int64_t>(len);
}

int64_t ModelHostDevice::ConfigAccess(uint64_t offset, uint8_t* buf,
                                      uint64_t len, bool write) {
  if (offset > kConfigSize || len > kConfigSize - offset) return -EINVAL;
  for (uint64_t done = 0; done < len;) {
    const uint32_t at = static_cast<uint32_t>(offset + done);
    const unsigned size = ChunkSize(at, len - done, 4);
    if (write) {
      config_->Write(at, static_cast<uint32_t>(LoadLe(buf + done, size)), size);
    } else {
      StoreLe(buf + done, config_->Read(at, size), size);
    }
    done += size;
  }
  // COMMAND.INTX_DISABLE may have changed what the INTx line shows.
  if (write) UpdateIntx(intx_level_);
  return static_cast<int64_t>(len);
}

absl::StatusOr<void*> ModelHostDevice::Mmap(uint64_t offset, uint64_t len) {
  const uint32_t index = static_cast<uint32_t>(offset >> 40);
  const uint64_t off = offset & kRegionOffsetMask;
  const uint64_t pages = RoundUpToPage(len);
  if (index != uapi::kPciBar2RegionIndex || len == 0 || pages < len ||
      off % kHostPageSize != 0 || off > desc_.bar2_size ||
      pages > desc_.bar2_size - off) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "host device %s: mmap(len=0x%x, offset=0x%x): EINVAL (only region "
        "%u, page aligned, within 0x%x bytes)",
        desc_.address.ToString(), len, offset, uapi::kPciBar2RegionIndex,
        desc_.bar2_size));
  }
  void* p = mmap(nullptr, pages, PROT_READ | PROT_WRITE, MAP_SHARED, bar2_fd_,
                 static_cast<off_t>(off));
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "host device %s: mmap(len=0x%x, offset=0x%x): %s",
        desc_.address.ToString(), len, offset, std::strerror(errno)));
  }
  if (memory_ != nullptr) {
    memory_->AddDeviceMemory(reinterpret_cast<uint64_t>(p), pages);
  }
  return p;
}

void ModelHostDevice::Munmap(void* addr, uint64_t len) {
  if (memory_ != nullptr) {
    memory_->RemoveDeviceMemory(reinterpret_cast<uint64_t>(addr));
  }
  munmap(addr, RoundUpToPage(len));
}

int ModelHostDevice::Reset() {
  engine_->Reset();
  UpdateIntx(false);
  return 0;
}

void ModelHostDevice::AttachDomain(HostIommuDomain* domain) {
  domain_ = domain;
}

// The engine's transfer: translate every page first, copy only if all of
// them translate (a faulting DMA moves no byte).
void ModelHostDevice::Dma(uint64_t iova, uint8_t* buf, uint64_t len,
                          bool to_ram) {
  if (!(command() & pcicfg::kCommandMaster)) {
    ++no_master_count_;
    return;
  }
  auto fault = [this](uint64_t at) {
    ++fault_count_;
    last_fault_iova_ = at;
  };
  if (len == 0) {
    ++completed_dma_count_;
    return;
  }
  if (domain_ == nullptr) {
    fault(iova);
    return;
  }
  struct Piece {
    uint64_t hva;
    uint64_t len;
  };
  absl::InlinedVector<Piece, 2> pieces;
  if (std::optional<uint64_t> hva = domain_->Translate(iova, len, to_ram)) {
    pieces.push_back({*hva, len});
  } else {
    // Per page: the range may span mappings whose hvas are not contiguous.
    uint64_t pos = iova;
    for (uint64_t done = 0; done < len;) {
      const uint64_t in_page = kHostPageSize - (pos & (kHostPageSize - 1));
      const uint64_t n = std::min(len - done, in_page);
      std::optional<uint64_t> h = domain_->Translate(pos, n, to_ram);
      if (!h) {
        fault(pos);
        return;
      }
      pieces.push_back({*h, n});
      done += n;
      pos += n;
    }
  }
  uint64_t done = 0;
  for (const Piece& piece : pieces) {
    void* host = reinterpret_cast<void*>(piece.hva);
    if (to_ram) {
      std::memcpy(host, buf + done, piece.len);
    } else {
      std::memcpy(buf + done, host, piece.len);
    }
    done += piece.len;
  }
  ++completed_dma_count_;
}

}  // namespace viommu::vfio::model
