// capi/capi_internal.h — what the C API's handles are in C++ (viommu.h
// declares them opaque), and the helpers every entry point shares: the
// control-call guard (-EBUSY / -EDEADLK), callback scopes, versioned struct
// copies, Status -> errno and logging to the context's callback.
//
// Private to capi/.
#ifndef VIOMMU_CAPI_CAPI_INTERNAL_H_
#define VIOMMU_CAPI_CAPI_INTERNAL_H_

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "capi/dma_grace.h"
#include "capi/dma_listener.h"
#include "capi/viommu_function.h"
#include "capi/zero_copy.h"
#include "viommu.h"
#include "viommu/hw/core/viommu.h"
#include "viommu/memory/address_space.h"
#include "viommu/memory/memory_region.h"
#include "viommu/memory/memory_system.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::capi {

// The I/O port space of VIOMMU_REGION_F_IO regions: ports 0 to 0xffff.
inline constexpr uint64_t kIoSpaceSize = 0x1'0000;

// Marks the calling thread as running a callback of `ctx` for the scope,
// so control calls it makes on `ctx` answer -EDEADLK; a DMA call the
// thread is inside is paused (capi/dma_grace.h: the callback does not hold
// up a RAM removal).
class CallbackScope {
 public:
  explicit CallbackScope(const viommu_ctx* ctx);
  ~CallbackScope();
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

  // True when the calling thread is inside a callback of `ctx`.
  static bool Active(const viommu_ctx* ctx);

 private:
  DmaPause pause_;
};

// An MMIO region whose accesses go to the VMM's read/write callbacks.
// Fence(): no callback runs once it returns, and none starts afterwards
// (later accesses, on an older memory map, fail as unassigned).
class CallbackMmioOps final : public memory::MmioOps {
 public:
  CallbackMmioOps(viommu_ctx* ctx, const viommu_region& r)
      : ctx_(ctx), read_(r.read), write_(r.write), opaque_(r.opaque) {}

  void Fence();

  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;
  // What the VMM's callbacks get: 1, 2, 4 or 8 bytes, any alignment.
  memory::AccessRules valid() const override { return {1, 8, true}; }
  memory::AccessRules impl() const override { return {1, 8, true}; }

 private:
  // Enters unless fenced; false when fenced.
  bool Enter();
  void Leave() { inflight_.fetch_sub(1, std::memory_order_seq_cst); }

  viommu_ctx* const ctx_;
  int (*const read_)(void*, uint64_t, uint64_t*, uint32_t);
  int (*const write_)(void*, uint64_t, uint64_t, uint32_t);
  void* const opaque_;
  std::atomic<bool> fenced_{false};
  std::atomic<int> inflight_{0};
};

// The MSI window: 4-byte writes become the context's msi callback, and so
// do the messages the vIOMMU's interrupt remapping delivers (Deliver).
// Stateless, so safe from any DMA thread.
class MsiWindowOps final : public memory::MmioOps {
 public:
  explicit MsiWindowOps(viommu_ctx* ctx) : ctx_(ctx) {}
  // Calls `msi` with the message's whole address, if there is a callback.
  void Deliver(const hw::MsiMessage& m) const;
  memory::MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                           memory::MemTxAttrs attrs) override;
  memory::MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                            memory::MemTxAttrs attrs) override;
  memory::AccessRules valid() const override { return {1, 4, false}; }
  memory::AccessRules impl() const override { return {4, 4, false}; }

 private:
  viommu_ctx* const ctx_;
};

// One region added through viommu_region_add.
struct Region {
  uint32_t id = 0;
  uint32_t kind = 0;  // VIOMMU_REGION_*
  bool io = false;    // VIOMMU_REGION_F_IO: in io_root, not root
  uint64_t gpa = 0;
  uint64_t len = 0;
  int32_t fd = -1;
  uint64_t fd_offset = 0;
  std::shared_ptr<memory::MemoryRegion> mr;
  // MMIO only; owned by `mr`, so it lives until the last memory map
  // showing the region (a DMA thread's, perhaps) is released.
  CallbackMmioOps* ops = nullptr;
};

struct VfioState;  // capi/vfio_state.h

}  // namespace viommu::capi

struct viommu_iommu {
  viommu_ctx* ctx = nullptr;
  std::unique_ptr<viommu::hw::Viommu> model;
  // virtio-iommu-pci: its PCI function (capi/viommu_function.h); declared
  // after `model`, which must outlive it. nullptr for VT-d.
  std::unique_ptr<viommu::capi::ViommuFunction> function;
  int endpoints = 0;  // endpoints behind it
};

struct viommu_ep {
  viommu_ctx* ctx = nullptr;
  uint16_t segment = 0;
  uint8_t bus = 0;
  uint8_t devfn = 0;
  viommu_iommu* iommu = nullptr;  // nullptr: identity
  viommu::memory::MemTxAttrs attrs;
  std::unique_ptr<viommu::memory::AddressSpace> as;
  uint32_t next_listener_id = 1;
  absl::btree_map<uint32_t, std::unique_ptr<viommu::capi::DmaListener>>
      listeners;
  // Revokes its zero-copy mappings (capi/zero_copy.h); set while it lives.
  std::unique_ptr<viommu::capi::RevokeWatcher> revoke;
  viommu_vfio* vfio = nullptr;  // its host device (owned by ctx->vfio)

  uint16_t sid() const { return static_cast<uint16_t>(bus << 8 | devfn); }
};

struct viommu_ctx {
  viommu_callbacks cb{};
  void* opaque = nullptr;
  std::atomic<bool> control_busy{false};
  // DMA calls' grace period: RAM removal waits for it (capi/dma_grace.h).
  std::unique_ptr<viommu::capi::DmaGrace> grace;
  // Zero-copy mappings (capi/zero_copy.h).
  std::unique_ptr<viommu::capi::HostMappings> host_maps;
  // RAM regions removed in the open transaction: the outermost commit
  // waits for the grace period, then forgets them.
  std::vector<const viommu::memory::MemoryRegion*> retired;

  viommu::memory::MemorySystem sys;
  std::shared_ptr<viommu::memory::MemoryRegion> root;
  std::unique_ptr<viommu::memory::AddressSpace> system_as;
  std::unique_ptr<viommu::capi::MsiWindowOps> msi_ops;
  std::shared_ptr<viommu::memory::MemoryRegion> msi_region;
  // The I/O port space (64 KiB) of VIOMMU_REGION_F_IO regions, for
  // viommu_pio_access.
  std::shared_ptr<viommu::memory::MemoryRegion> io_root;
  std::unique_ptr<viommu::memory::AddressSpace> io_as;

  uint32_t next_region_id = 1;
  absl::btree_map<uint32_t, std::unique_ptr<viommu::capi::Region>> regions;
  absl::flat_hash_map<const viommu::memory::MemoryRegion*,
                      viommu::capi::Region*>
      region_by_mr;
  int txn_depth = 0;

  std::unique_ptr<viommu_iommu> iommu;
  // Key: segment << 16 | bus << 8 | devfn.
  absl::btree_map<uint32_t, std::unique_ptr<viommu_ep>> endpoints;
  // The host backend and VFIO containers (capi/vfio_state.h); freed
  // after the endpoints, before the vIOMMU and the address spaces.
  std::unique_ptr<viommu::capi::VfioState> vfio;

  // Sends `msg` to the log callback, if any.
  void Log(int level, const std::string& msg) const;
  template <typename... Args>
  void Logf(int level, const absl::FormatSpec<Args...>& fmt,
            const Args&... args) const {
    if (cb.log != nullptr) Log(level, absl::StrFormat(fmt, args...));
  }
};

namespace viommu::capi {

// Entered at the top of every control call. status() is 0, -EDEADLK (the
// calling thread is inside a callback of ctx) or -EBUSY (another control
// call is running on ctx); either is logged. Leaves on destruction.
class ControlGuard {
 public:
  ControlGuard(viommu_ctx* ctx, const char* fn);
  ~ControlGuard();
  ControlGuard(const ControlGuard&) = delete;
  ControlGuard& operator=(const ControlGuard&) = delete;
  int status() const { return status_; }

 private:
  viommu_ctx* ctx_;
  int status_ = 0;
};

// The errno for a Status from the C++ layers (0 for OK).
int StatusToErrno(const absl::Status& status);
// Logs `status` (prefixed with `fn`) and returns its negative errno.
int Fail(const viommu_ctx* ctx, const char* fn, const absl::Status& status);
// Logs `msg` and returns -err.
int FailErrno(const viommu_ctx* ctx, const char* fn, int err,
              const std::string& msg);

// Copies a caller's versioned struct (first member `size_t size`) into
// *out, zero-filling fields an older caller lacks. 0, -EINVAL (NULL or
// size below `min_size`) or -E2BIG (non-zero bytes this library does not
// know).
int CopyStructIn(const void* in, size_t min_size, size_t our_size, void* out);
template <typename T>
int CopyIn(const T* in, T* out) {
  return CopyStructIn(in, sizeof(T), sizeof(T), out);
}

// After the outermost commit that published the removal of the RAM
// regions in ctx->retired: waits for the DMA grace period, then forgets
// them (capi/region.cc).
void RetireRemovedRam(viommu_ctx* ctx);

// "0000:00:04.0".
std::string EndpointName(uint16_t segment, uint8_t bus, uint8_t devfn);

}  // namespace viommu::capi

#endif  // VIOMMU_CAPI_CAPI_INTERNAL_H_
