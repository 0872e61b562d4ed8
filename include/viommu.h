/*
 * viommu.h — the C API for embedding viommu in a VMM as its DMA subsystem:
 * guest memory regions, a vIOMMU, PCI endpoints, DMA through an endpoint's
 * translation and DMA listeners. The one stable public header (C99 and
 * C++17; the layers' headers, <layer>/include/viommu/, are internal C++
 * and not installed).
 *
 *   struct viommu_config cfg = { sizeof cfg };
 *   struct viommu_callbacks cb = { sizeof cb };
 *   cb.log = my_log;
 *   viommu_ctx *ctx;
 *   if (viommu_ctx_new(&cfg, &cb, vmm, &ctx) < 0) ...
 *   struct viommu_region ram = { sizeof ram };
 *   ram.kind = VIOMMU_REGION_RAM; ram.gpa = 0; ram.len = len;
 *   ram.hva = mem; ram.fd = memfd; ram.fd_offset = 0;
 *   viommu_region_add(ctx, &ram, &ram_id);
 *   viommu_iommu_new(ctx, "intel-iommu", "caching-mode=on", &iommu);
 *   viommu_ep_new(ctx, 0, 0, 0x20, iommu, &ep);     // 0000:00:04.0
 *   int r = viommu_dma_rw(ep, iova, buf, 64, VIOMMU_DMA_WRITE, &fault);
 *   ...
 *   viommu_ctx_free(ctx);
 *
 * A tutorial, the error codes of every function and what is planned:
 * docs/embedding.md.
 *
 * CONVENTIONS
 *  - Every call that can fail returns 0 or a negative errno (-EINVAL, ...);
 *    the detail goes to the context's `log` callback. Handles are opaque.
 *  - Every struct the caller passes starts with `size_t size`, set to
 *    sizeof the struct as the caller's header declares it. A smaller size
 *    (an older caller) is accepted from the size this API first had; the
 *    fields it lacks read as zero. A larger one (a newer caller) is accepted
 *    only if the bytes this library does not know are zero, else -E2BIG.
 *    Output structs are filled up to their `size`.
 *  - Unknown flag bits are -EINVAL.
 *
 * THREADING AND LIFETIME (the contract; the library checks what it can)
 *  - CONTROL calls — every function except viommu_dma_rw() and
 *    viommu_abi_version() — are serialised per context by the VMM (e.g.
 *    under its big lock); they may come from any thread, one at a time. A
 *    control call that overlaps another one on the same context returns
 *    -EBUSY and does nothing (void ones abort: a VMM bug).
 *  - DMA calls (viommu_dma_rw) may run on any number of threads at once,
 *    concurrently with control calls. Each access works on the memory map
 *    published when it started. REQUIRES: the endpoint is not freed while
 *    a DMA call on it runs.
 *  - Callbacks run synchronously on the thread of the call that caused
 *    them: MMIO region callbacks on the thread of the DMA or MMIO access,
 *    DMA-listener callbacks on the control thread, `msi` on the thread
 *    whose write reached the MSI window, `log` on any thread. A callback
 *    must not call a control function of its context: that call returns
 *    -EDEADLK (void ones abort).
 *  - viommu_region_del() returns only once no MMIO callback of that region
 *    is running on any thread, and none is called afterwards: the VMM may
 *    then free what the callbacks use. So an MMIO callback must not wait
 *    for the thread that removes its region (that would deadlock). A DMA
 *    reaching a region removed in a still-open transaction gets -EIO. RAM must stay mapped from
 *    viommu_region_add() until viommu_region_del() (or, in a transaction,
 *    the commit) returns AND every viommu_dma_rw() that started before
 *    then has returned: removal does not wait for DMA in flight on an
 *    older memory map yet (planned, docs/embedding.md).
 *  - A DMA thread may fault while the control thread accesses VT-d
 *    registers: VT-d serialises its fault records with register accesses.
 */
#ifndef VIOMMU_H_
#define VIOMMU_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VIOMMU_API __attribute__((visibility("default")))
#else
#define VIOMMU_API
#endif

/* ABI version: major << 16 | minor. The major changes on an incompatible
 * change; the minor when something is added. */
#define VIOMMU_ABI_MAJOR 0
#define VIOMMU_ABI_MINOR 2
#define VIOMMU_ABI_VERSION ((VIOMMU_ABI_MAJOR << 16) | VIOMMU_ABI_MINOR)

/* The version of the library loaded at run time (VIOMMU_ABI_VERSION of the
 * header it was built with). Any thread. */
VIOMMU_API uint32_t viommu_abi_version(void);

typedef struct viommu_ctx viommu_ctx;     /* memory map, vIOMMU, endpoints */
typedef struct viommu_iommu viommu_iommu; /* a vIOMMU instance */
typedef struct viommu_ep viommu_ep;       /* a DMA-capable PCI function */
struct viommu_dma_fault;                  /* below, with viommu_dma_rw */

/* ---- Context ------------------------------------------------------------ */

/* Log levels (syslog's numbers). */
#define VIOMMU_LOG_ERR 3
#define VIOMMU_LOG_WARNING 4
#define VIOMMU_LOG_INFO 6
#define VIOMMU_LOG_DEBUG 7

/* "Requester id unknown" in a source id. */
#define VIOMMU_SID_NONE UINT32_MAX

struct viommu_callbacks {
  size_t size;
  /* Optional. One line of detail (no trailing newline) about a failed call
   * or an event; `msg` is valid during the call. */
  void (*log)(void *opaque, int level, const char *msg);
  /* Optional. A 4-byte write reached the MSI window (0xfee00000, 1 MiB):
   * an endpoint's DMA, or a VT-d fault / invalidation event. `sid` is the
   * requester id (bus << 8 | devfn) or VIOMMU_SID_NONE. Without it such
   * writes are dropped. */
  void (*msi)(void *opaque, uint64_t addr, uint32_t data, uint32_t sid);
  /* Optional. A DMA of `ep` failed (the record viommu_dma_rw also
   * returns), on the DMA's thread, after the vIOMMU recorded it. */
  void (*fault)(void *opaque, viommu_ep *ep,
                const struct viommu_dma_fault *fault);
  /* Optional. The IOVA ranges `ep` may use changed (a VFIO attach or
   * detach changed the host's reserved regions / aperture); query them
   * with viommu_ep_iova_ranges(). Control thread. */
  void (*iova_ranges_changed)(void *opaque, viommu_ep *ep);
  /* Optional. A zero-copy mapping (viommu_dma_map_host) of `ep` was
   * revoked: the guest invalidated or the VMM removed what it maps. The
   * host pointer stays valid until the VMM unmaps it; DMA through it
   * should stop. `cookie` is the one given at map time. */
  void (*dma_revoked)(void *opaque, viommu_ep *ep, void *cookie);
};

struct viommu_config {
  size_t size;
  uint32_t flags; /* none defined yet: must be 0 */
};

/* Creates a context: a memory system, the system address space (empty
 * but for the MSI window), no vIOMMU and no endpoint. `cb` may be NULL;
 * `opaque` is passed to every context callback.
 * Errors: -EINVAL (NULL cfg or out, bad size or flags), -E2BIG. */
VIOMMU_API int viommu_ctx_new(const struct viommu_config *cfg,
                              const struct viommu_callbacks *cb, void *opaque,
                              viommu_ctx **out);
/* Frees the context and everything in it: endpoints (their DMA listeners
 * get their unmap callbacks), the vIOMMU, the regions (an open transaction
 * is committed first). Cannot fail; NULL is a no-op. */
VIOMMU_API void viommu_ctx_free(viommu_ctx *ctx);

/* ---- Guest memory regions ----------------------------------------------- */

#define VIOMMU_REGION_RAM 1        /* guest RAM the VMM mapped at `hva` */
#define VIOMMU_REGION_RAM_DEVICE 2 /* an mmap'd device BAR at `hva` */
#define VIOMMU_REGION_MMIO 3       /* emulated by the read/write callbacks */

#define VIOMMU_REGION_F_READONLY (1u << 0) /* RAM / RAM_DEVICE only */
/* MMIO only: the region is in the context's I/O port space (64 KiB,
 * reached by viommu_pio_access; `gpa` is the first port, gpa + len <=
 * 0x10000), not in guest-physical memory. DMA never reaches it. */
#define VIOMMU_REGION_F_IO (1u << 1)

struct viommu_region {
  size_t size;
  uint32_t kind;  /* VIOMMU_REGION_* */
  uint32_t flags; /* VIOMMU_REGION_F_* */
  uint64_t gpa;   /* guest-physical base */
  uint64_t len;   /* bytes, > 0; gpa + len must not pass 2^64 */
  void *hva;      /* RAM, RAM_DEVICE: the mapping (not owned) */
  /* RAM, optional: the fd `hva` maps and its offset, handed to DMA
   * listeners (vfio-user, vhost need them); -1 when none. Note: a
   * zero-initialised struct says fd 0, so set -1 explicitly. */
  int32_t fd;
  uint32_t reserved; /* must be 0 */
  uint64_t fd_offset;
  /* MMIO: both required. Accesses are 1, 2, 4 or 8 bytes at `offset` in
   * the region, little-endian values; return 0, or nonzero for a device
   * error (the access then fails). `*data` is zero on entry of read. */
  int (*read)(void *opaque, uint64_t offset, uint64_t *data, uint32_t size);
  int (*write)(void *opaque, uint64_t offset, uint64_t data, uint32_t size);
  void *opaque;     /* for read/write */
  const char *name; /* optional, for messages; copied */
};

/* Adds a region and sets *id (never 0). Regions must not overlap each
 * other nor the vIOMMU's registers or the MSI window (I/O regions: other
 * I/O regions). Outside a transaction it takes effect at once, inside at
 * the commit.
 * Errors: -EINVAL (NULL, bad kind/flags/len/size, missing hva or
 * callbacks, F_IO on RAM or past port 0xffff), -E2BIG, -EEXIST
 * (overlap), -ENOMEM, -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_region_add(viommu_ctx *ctx,
                                 const struct viommu_region *region,
                                 uint32_t *id);
/* Removes region `id`; see THREADING for when it returns. Listeners see
 * the removal at once, or at the commit inside a transaction (the MMIO
 * callbacks are fenced off at once either way).
 * Errors: -ENOENT (no such id), -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_region_del(viommu_ctx *ctx, uint32_t id);

/* Batches region changes: listeners see one diff at the outermost commit,
 * so a remove + add of the same range is never seen as a hole. Nests.
 * Errors: -EBUSY, -EDEADLK; commit also -EINVAL (no open transaction). */
VIOMMU_API int viommu_transaction_begin(viommu_ctx *ctx);
VIOMMU_API int viommu_transaction_commit(viommu_ctx *ctx);

/* The VMM's exit handler: a `size`-byte (1, 2, 4, 8) guest access at
 * guest-physical `addr`, value in the low bytes of *data (read: set).
 * Reaches the vIOMMU's registers and the regions added here.
 * Returns 0 (done), -ENOENT (nothing of ours there: the VMM handles it),
 * -EIO (a region is there but refused or failed the access: reads give 0),
 * -EINVAL (size, NULL data), -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_mmio_access(viommu_ctx *ctx, uint64_t addr,
                                  uint64_t *data, uint32_t size,
                                  int is_write);
/* The same for a `size`-byte (1, 2, 4) access to I/O port `port` (an
 * x86 IN/OUT exit): reaches the VIOMMU_REGION_F_IO regions. The MMIO
 * callbacks get the port's offset in the region.
 * Returns 0, -ENOENT (no region of ours at `port`), -EIO (the region's
 * callback failed: reads give 0), -EINVAL (size, NULL data, port + size
 * past 0x10000), -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_pio_access(viommu_ctx *ctx, uint16_t port,
                                 uint32_t *data, uint32_t size, int is_write);

/* ---- vIOMMU ------------------------------------------------------------- */

/* Creates the context's vIOMMU (one per context) from a -device driver
 * name and its QEMU properties, comma-separated ("caching-mode=on,
 * aw-bits=48"; NULL or "" for none). Drivers: "intel-iommu" (VT-d,
 * registers at 0xfed90000).
 * Errors: -EINVAL (property: the log says which), -EOPNOTSUPP (driver),
 * -EEXIST (one exists, or its registers overlap a region), -EBUSY,
 * -EDEADLK. */
VIOMMU_API int viommu_iommu_new(viommu_ctx *ctx, const char *driver,
                                const char *props, viommu_iommu **out);
/* Frees it. Errors: -EBUSY (an endpoint is still behind it, or another
 * control call is running), -EDEADLK. NULL is a no-op returning 0. */
VIOMMU_API int viommu_iommu_free(viommu_iommu *iommu);
/* system_reset of the vIOMMU's state (registers, caches). Errors: -EBUSY,
 * -EDEADLK. */
VIOMMU_API int viommu_iommu_reset(viommu_iommu *iommu);

/* ---- PCI endpoints ------------------------------------------------------ */

/* A PCI function (segment, bus, devfn = slot << 3 | fn) that does DMA.
 * iommu NULL: identity-mapped (its DMA sees guest-physical memory);
 * otherwise behind that vIOMMU (which supports segment 0 only).
 * Errors: -EINVAL (NULL out, segment), -EEXIST (same function twice),
 * -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_ep_new(viommu_ctx *ctx, uint16_t segment, uint8_t bus,
                             uint8_t devfn, viommu_iommu *iommu,
                             viommu_ep **out);
/* Frees the endpoint; its DMA listeners get their unmap callbacks first.
 * Cannot fail; NULL is a no-op. */
VIOMMU_API void viommu_ep_free(viommu_ep *ep);

/* ---- DMA (any thread) --------------------------------------------------- */

#define VIOMMU_DMA_READ 0u  /* the device reads guest memory into buf */
#define VIOMMU_DMA_WRITE 1u /* the device writes buf to guest memory */

/* Why a DMA failed (viommu_dma_fault.reason). */
#define VIOMMU_FAULT_TRANSLATION 1 /* the vIOMMU refused: no mapping/perm */
#define VIOMMU_FAULT_UNASSIGNED 2  /* nothing at the (translated) address */
#define VIOMMU_FAULT_READONLY 3    /* a write to read-only memory */
#define VIOMMU_FAULT_DEVICE 4      /* an MMIO region refused or failed it */

#define VIOMMU_FAULT_F_WRITE (1u << 0) /* the access was a write */

struct viommu_dma_fault {
  size_t size;
  uint64_t iova;    /* first byte that failed, in the endpoint's space */
  uint32_t sid;     /* requester id: bus << 8 | devfn */
  uint32_t reason;  /* VIOMMU_FAULT_* */
  uint32_t flags;   /* VIOMMU_FAULT_F_* */
  uint16_t segment;
  uint16_t reserved;
};

/* `len` bytes of DMA by endpoint `ep` at `iova`, through its vIOMMU's
 * translation (or identity). Like PCI DMA the access goes on past a
 * failure: bytes that fail read as 0, writes to them are dropped. On a
 * translation fault the vIOMMU also records it (VT-d: fault registers and
 * maybe its fault-event MSI). `fault` may be NULL; it is filled on
 * -EFAULT and -EIO.
 * Returns 0, -EFAULT (translation, unassigned, read-only: the first in
 * *fault), -EIO (an MMIO region failed, or was removed in an open
 * transaction), -EINVAL (NULL ep or buf with len > 0, flags,
 * fault->size). */
VIOMMU_API int viommu_dma_rw(viommu_ep *ep, uint64_t iova, void *buf,
                             size_t len, uint32_t flags,
                             struct viommu_dma_fault *fault);

/* ---- DMA listeners ------------------------------------------------------ */

#define VIOMMU_PERM_READ (1u << 0)
#define VIOMMU_PERM_WRITE (1u << 1)

#define VIOMMU_MAP_F_RAM_DEVICE (1u << 0) /* hva is device memory (a BAR) */

/* One mapping of the endpoint's DMA space onto guest RAM. */
struct viommu_dma_map {
  size_t size;
  uint64_t iova; /* in the endpoint's DMA space */
  uint64_t gpa;  /* guest-physical address it maps to */
  uint64_t len;
  void *hva;          /* host address of gpa */
  int32_t fd;         /* the RAM region's fd, or -1 */
  uint32_t perm;      /* VIOMMU_PERM_* */
  uint64_t fd_offset; /* of gpa in fd */
  uint32_t flags;     /* VIOMMU_MAP_F_* */
  uint32_t reserved;
};

struct viommu_dma_listener {
  size_t size;
  /* Required. A mapping appeared (`m` valid during the call). */
  void (*map)(void *opaque, const struct viommu_dma_map *m);
  /* Required. [iova, iova + len) is no longer mapped; it covers exactly
   * ranges earlier map calls reported. */
  void (*unmap)(void *opaque, uint64_t iova, uint64_t len);
  void *opaque;
};

/* Registers a listener on the endpoint's DMA space: map is called at once
 * for every current mapping (replay), then map / unmap as the guest memory
 * map or the vIOMMU's mappings change (a changed mapping arrives as unmap,
 * then map). What is mapped: guest RAM and RAM_DEVICE regions the
 * endpoint reaches: all of them when identity-mapped or the vIOMMU is off
 * (iova == gpa), the vIOMMU's mappings onto RAM otherwise (VT-d notifies
 * them only with caching-mode=on). Sets *id (never 0).
 * Errors: -EINVAL (NULL, size, missing callback), -E2BIG, -EBUSY,
 * -EDEADLK; the vIOMMU's refusal (-EINVAL, e.g. VT-d without caching
 * mode; nothing is registered). */
VIOMMU_API int viommu_dma_listener_add(viommu_ep *ep,
                                       const struct viommu_dma_listener *l,
                                       uint32_t *id);
/* Unregisters it; unmap is called for everything still mapped.
 * Errors: -ENOENT, -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_dma_listener_del(viommu_ep *ep, uint32_t id);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VIOMMU_H_ */
