// VfioPciDevice's interrupts: eventfds registered with
// VFIO_DEVICE_SET_IRQS for INTx or MSI, delivery from PollInterrupts, and
// the INTx unmask after a BAR access (QEMU's vfio_intx_* / vfio_msi_* without
// KVM, as behaviour).
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "viommu/hw/pci/pci_regs.h"
#include "viommu/system/vfio/vfio_pci_device.h"

namespace viommu::system {
namespace {

namespace uapi = vfio::uapi;

}  // namespace

absl::StatusOr<VfioPciDevice::EventFd> VfioPciDevice::EventFd::Create() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return VfioHostCallError(errno, "eventfd", "EFD_NONBLOCK");
  return EventFd(fd);
}

VfioPciDevice::EventFd& VfioPciDevice::EventFd::operator=(
    EventFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

VfioPciDevice::EventFd::~EventFd() {
  if (fd_ >= 0) close(fd_);
}

uint64_t VfioPciDevice::EventFd::Drain() const {
  uint64_t v = 0;
  return read(fd_, &v, sizeof(v)) == static_cast<ssize_t>(sizeof(v)) ? v : 0;
}

absl::Status VfioPciDevice::SetIrqs(uint32_t index, uint32_t flags,
                                    uint32_t count,
                                    const std::vector<int>& fds) {
  std::vector<uint8_t> buf(sizeof(uapi::vfio_irq_set) +
                           fds.size() * sizeof(int32_t));
  uapi::vfio_irq_set hdr{};
  hdr.argsz = static_cast<uint32_t>(buf.size());
  hdr.flags = flags;
  hdr.index = index;
  hdr.start = 0;
  hdr.count = count;
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  for (size_t i = 0; i < fds.size(); ++i) {
    const int32_t fd = fds[i];
    std::memcpy(buf.data() + sizeof(hdr) + i * sizeof(fd), &fd, sizeof(fd));
  }
  const int rc =
      backend_->Ioctl(fd_, uapi::kVfioDeviceSetIrqs, vfio::AsArg(buf.data()));
  if (rc < 0) {
    return VfioHostCallError(
        rc, "VFIO_DEVICE_SET_IRQS",
        absl::StrFormat("fd=%d, index=%u, flags=0x%x, start=0, count=%u", fd_,
                        index, flags, count));
  }
  return absl::OkStatus();
}

absl::Status VfioPciDevice::EnableIntx() {
  if (info_.intx.count == 0 || !(info_.intx.flags & uapi::kIrqInfoEventfd)) {
    return absl::OkStatus();
  }
  absl::StatusOr<EventFd> efd = EventFd::Create();
  if (!efd.ok()) return efd.status();
  absl::Status st = SetIrqs(
      uapi::kPciIntxIrqIndex,
      uapi::kIrqSetDataEventfd | uapi::kIrqSetActionTrigger, 1, {efd->fd()});
  if (!st.ok()) return st;
  irq_fds_.clear();
  irq_fds_.push_back(*std::move(efd));
  ++irq_fds_generation_;
  irq_mode_ = IrqMode::kIntx;
  intx_pending_ = false;
  return absl::OkStatus();
}

absl::Status VfioPciDevice::EnableMsi(unsigned vectors) {
  std::vector<EventFd> fds;
  std::vector<int> raw;
  for (unsigned v = 0; v < vectors; ++v) {
    absl::StatusOr<EventFd> efd = EventFd::Create();
    if (!efd.ok()) return efd.status();
    raw.push_back(efd->fd());
    fds.push_back(*std::move(efd));
  }
  absl::Status st = SetIrqs(
      uapi::kPciMsiIrqIndex,
      uapi::kIrqSetDataEventfd | uapi::kIrqSetActionTrigger, vectors, raw);
  if (!st.ok()) return st;
  irq_fds_ = std::move(fds);
  ++irq_fds_generation_;
  irq_mode_ = IrqMode::kMsi;
  msi_vectors_ = vectors;
  return absl::OkStatus();
}

void VfioPciDevice::DisableIrqs() {
  const uint32_t none = uapi::kIrqSetDataNone | uapi::kIrqSetActionTrigger;
  if (irq_mode_ == IrqMode::kIntx) {
    absl::Status st = SetIrqs(uapi::kPciIntxIrqIndex, none, 0, {});
    if (!st.ok()) RecordHostError(std::move(st));
    SetIntx(false);
  } else if (irq_mode_ == IrqMode::kMsi) {
    absl::Status st = SetIrqs(uapi::kPciMsiIrqIndex, none, 0, {});
    if (!st.ok()) RecordHostError(std::move(st));
  }
  if (!irq_fds_.empty()) ++irq_fds_generation_;
  irq_fds_.clear();
  irq_mode_ = IrqMode::kNone;
  intx_pending_ = false;
  msi_vectors_ = 0;
}

// Follows the guest's MSI enable bit and enabled-vector count: MSI at the
// host while enabled, INTx otherwise (QEMU's vfio_msi_enable /
// vfio_msi_disable; a failed MSI enable falls back to INTx as QEMU does).
void VfioPciDevice::UpdateMsiState() {
  if (!realized_) return;
  unsigned want = 0;
  if (msi_enabled()) {
    const uint16_t flags = static_cast<uint16_t>(
        config()[msi_cap() + hw::pci::kMsiFlags] |
        config()[msi_cap() + hw::pci::kMsiFlags + 1] << 8);
    want = 1u << ((flags & hw::pci::kMsiFlagsQsize) >> 4);
  }
  if (want != 0 && (irq_mode_ != IrqMode::kMsi || msi_vectors_ != want)) {
    DisableIrqs();
    absl::Status st = EnableMsi(want);
    if (st.ok()) return;
    RecordHostError(std::move(st));
  } else if (want != 0 || irq_mode_ != IrqMode::kMsi) {
    return;
  } else {
    DisableIrqs();
  }
  if (config()[hw::pci::kCfgInterruptPin] != 0) {
    absl::Status st = EnableIntx();
    if (!st.ok()) RecordHostError(std::move(st));
  }
}

void VfioPciDevice::IntxEoi() {
  if (irq_mode_ != IrqMode::kIntx || !intx_pending_) return;
  intx_pending_ = false;
  SetIntx(false);
  ++stats_.intx_unmasked;
  absl::Status st =
      SetIrqs(uapi::kPciIntxIrqIndex,
              uapi::kIrqSetDataNone | uapi::kIrqSetActionUnmask, 1, {});
  if (!st.ok()) RecordHostError(std::move(st));
}

void VfioPciDevice::PollInterrupts() {
  if (irq_mode_ == IrqMode::kIntx) {
    if (!irq_fds_.empty() && irq_fds_[0].Drain() != 0) {
      ++stats_.intx_asserted;
      intx_pending_ = true;
      // The guest's handler must reach the MMIO path to end it.
      if (!mmaps_off_) {
        SetMmapsEnabled(false);
        ++stats_.mmaps_disabled;
      }
      SetIntx(true);
      return;
    }
  }
  if (mmaps_off_ && !intx_pending_) SetMmapsEnabled(true);
  if (irq_mode_ == IrqMode::kIntx) return;
  // Indexes, not iterators: an MSI aimed at this device's own config
  // space (ECAM) could change the MSI setup and the eventfd set.
  for (size_t v = 0; irq_mode_ == IrqMode::kMsi && v < irq_fds_.size(); ++v) {
    if (irq_fds_[v].Drain() == 0) continue;
    if (MsiNotify(static_cast<unsigned>(v))) ++stats_.msi_delivered;
  }
}

std::vector<int> VfioPciDevice::InterruptEventFds() const {
  std::vector<int> out;
  out.reserve(irq_fds_.size());
  for (const EventFd& e : irq_fds_) out.push_back(e.fd());
  return out;
}

}  // namespace viommu::system
