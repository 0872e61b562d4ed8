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
 *  - CONTROL calls — every function except the DMA calls below and
 *    viommu_abi_version() and viommu_free() — are serialised per context
 *    by the VMM (e.g. under its big lock); they may come from any thread,
 *    one at a time. A control call that overlaps another one on the same
 *    context returns -EBUSY and does nothing (void ones abort: a VMM bug).
 *  - DMA calls (viommu_dma_rw, viommu_dma_map_host, viommu_dma_unmap_host)
 *    may run on any number of threads at once, concurrently with control
 *    calls. Each access works on the memory map published when it
 *    started. REQUIRES: the endpoint is not freed while a DMA call on it
 *    runs.
 *  - Callbacks run synchronously on the thread of the call that caused
 *    them: MMIO region callbacks on the thread of the DMA or MMIO access,
 *    DMA-listener callbacks on the control thread, `msi` on the thread
 *    whose write reached the MSI window, `fault` on the thread of the
 *    failed DMA call, `dma_revoked` on the thread of the control call
 *    that revoked (viommu_mmio_access for the guest's invalidation,
 *    viommu_region_del, viommu_transaction_commit, viommu_iommu_reset,
 *    viommu_ep_free, viommu_ctx_free), `log` on any thread. A callback
 *    must not call a control function of its context: that call returns
 *    -EDEADLK (void ones abort); DMA calls are allowed.
 *  - viommu_region_del() returns only once no MMIO callback of that region
 *    is running on any thread, and none is called afterwards: the VMM may
 *    then free what the callbacks use. So an MMIO callback must not wait
 *    for the thread that removes its region (that would deadlock). A DMA
 *    reaching a region removed in a still-open transaction gets -EIO.
 *  - RAM (and RAM_DEVICE) must stay mapped from viommu_region_add() until
 *    viommu_region_del() (or, in a transaction, the commit) returns; it
 *    returns only once no DMA call that could still touch the memory is
 *    running (a grace period: it waits for DMA calls that began on the
 *    older memory map), so the VMM may munmap it then. A DMA thread inside
 *    a callback (MMIO, msi, fault, log) does not hold that up, so such a
 *    callback may wait for the VMM's lock. viommu_region_del of RAM that
 *    a live zero-copy mapping points into first revokes the mappings
 *    (dma_revoked), then returns -EBUSY if any is still mapped.
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
#define VIOMMU_ABI_MINOR 3
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
   * writes are dropped. Behind VT-d with interrupt remapping enabled, an
   * endpoint's write is remapped first (IRTE lookup; a blocked one is a
   * VT-d fault, no call) and `addr`/`data` are the remapped message,
   * whole: bits 63:40 of `addr` carry an x2APIC destination above 255. */
  void (*msi)(void *opaque, uint64_t addr, uint32_t data, uint32_t sid);
  /* Optional. A DMA of `ep` failed: called once per failed viommu_dma_rw
   * or viommu_dma_map_host with the record it returns (whether or not the
   * caller passed one; `fault` valid during the call), on the DMA's
   * thread, after the vIOMMU recorded it (VT-d: fault registers and
   * maybe its fault-event MSI, which `msi` gets first). */
  void (*fault)(void *opaque, viommu_ep *ep,
                const struct viommu_dma_fault *fault);
  /* Optional. The IOVA ranges `ep` may use changed (a VFIO attach or
   * detach changed the host's reserved regions / aperture); query them
   * with viommu_ep_iova_ranges(). Control thread. */
  void (*iova_ranges_changed)(void *opaque, viommu_ep *ep);
  /* Optional. A zero-copy mapping (viommu_dma_map_host) of `ep` was
   * revoked, once per mapping: the guest invalidated the translation it
   * came from (any vIOMMU invalidation overlapping its IOVA range, or its
   * DMA space changing), or the VMM is removing the RAM it points into,
   * or freeing `ep` or the context. The host pointer stays valid until
   * the VMM unmaps it (it may, from this callback: viommu_dma_unmap_host
   * is a DMA call); DMA through it should stop. `cookie` is the one given
   * at map time. Thread: see THREADING. */
  void (*dma_revoked)(void *opaque, viommu_ep *ep, void *cookie);
  /* Optional. The INTx pin `pin` (1 = INTA# .. 4 = INTD#) of a PCI
   * function of ours (the virtio-iommu-pci function: `sid` is 0 << 8 |
   * its devfn) changed to `level` (1 asserted, 0 deasserted; level-
   * triggered, the guest's ISR read deasserts it). The VMM routes it to
   * its interrupt controller. On the thread of the control call that
   * changed it, or of a DMA call whose fault virtio-iommu reported on its
   * event queue. Without it the function's interrupts are dropped. */
  void (*intx)(void *opaque, uint32_t sid, uint32_t pin, int level);
};

struct viommu_config {
  size_t size;
  uint32_t flags; /* none defined yet: must be 0 */
  /* ABI 0.3; an older caller's struct ends at `flags` and gets the
   * defaults. The host VFIO attaches devices of (viommu_vfio_attach):
   * NULL or "model" (default): the in-process model host, three simulated
   * edu-compatible devices 0000:01:00.0, 0000:02:00.0, 0000:03:00.0
   * behind modelled type1 / iommufd host IOMMUs (docs/vfio-host-model.md);
   * "linux": the running kernel's /dev/vfio and /dev/iommu (bind the
   * devices to vfio-pci first). Read during viommu_ctx_new only. */
  const char *host;
  /* Optional, "model" only: a device-tree blob file describing the model
   * host's platform instead of the built-in one (the `viommu` binary's
   * -object vfio-host-model,dtb=FILE). Read during viommu_ctx_new. */
  const char *host_dtb;
};

/* Creates a context: a memory system, the system address space (empty
 * but for the MSI window), the host backend of cfg->host, no vIOMMU and
 * no endpoint. `cb` may be NULL; `opaque` is passed to every context
 * callback.
 * Errors: -EINVAL (NULL cfg or out, bad size or flags, unknown host,
 * host_dtb with "linux", a host_dtb that does not parse: the log says
 * why), -ENOENT / -EACCES (host_dtb cannot be read), -E2BIG, -ENOMEM. */
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
 * registers at 0xfed90000) and "virtio-iommu-pci" (virtio-iommu, a PCI
 * function the VMM exposes on bus 0 at `addr=SLOT.FN`, required: its
 * configuration space through viommu_iommu_pci_config, its BARs in the
 * context's memory once the guest programs them, its INTx to the `intx`
 * callback; docs/embedding.md, "virtio-iommu").
 * Errors: -EINVAL (property: the log says which), -EOPNOTSUPP (driver),
 * -EEXIST (one exists, or its registers overlap a region), -EBUSY,
 * -EDEADLK. */
VIOMMU_API int viommu_iommu_new(viommu_ctx *ctx, const char *driver,
                                const char *props, viommu_iommu **out);
/* Frees it. Errors: -EBUSY (an endpoint is still behind it, or another
 * control call is running), -EDEADLK. NULL is a no-op returning 0. */
VIOMMU_API int viommu_iommu_free(viommu_iommu *iommu);
/* system_reset of the vIOMMU's state (registers, caches; virtio-iommu:
 * domains, endpoints and its PCI function). Errors: -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_iommu_reset(viommu_iommu *iommu);
/* The guest's configuration access to the vIOMMU's own PCI function
 * (virtio-iommu-pci), for the VMM's PCI host bridge: `size` (1, 2, 4)
 * bytes at `offset` in its configuration space, value in the low bytes of
 * *data (read: set). BAR and command writes map or unmap its BARs.
 * Errors: -EOPNOTSUPP (the vIOMMU is no PCI function: intel-iommu),
 * -EINVAL (NULL, size, past the configuration space), -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_iommu_pci_config(viommu_iommu *iommu, uint32_t offset,
                                       uint32_t *data, uint32_t size,
                                       int is_write);

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

/* Zero-copy DMA, in the shape of QEMU's address_space_map: maps up to
 * *len bytes of `ep`'s DMA space at `iova` for a device access of `flags`
 * (VIOMMU_DMA_READ: the device reads guest memory; VIOMMU_DMA_WRITE: it
 * writes) and sets *host to the host address of `iova` and *len to the
 * bytes that are contiguous guest RAM behind one translation (shorter
 * than asked where the vIOMMU's page or the RAM region ends: map the rest
 * with another call). Only guest RAM is mapped, never MMIO or RAM_DEVICE
 * (no bounce buffer: use viommu_dma_rw there). The mapping lives until
 * viommu_dma_unmap_host; it is revoked (the dma_revoked callback, with
 * `cookie`) when the guest invalidates the translation, and removing the
 * RAM it points into fails with -EBUSY until it is unmapped. `fault` may
 * be NULL; it is filled on -EFAULT (the `fault` callback runs too; a
 * translation fault is recorded by the vIOMMU as for viommu_dma_rw).
 * Returns 0, -EFAULT (translation fault, unassigned, write to read-only
 * RAM, or RAM being removed), -EOPNOTSUPP (not RAM at the translated
 * address; or the vIOMMU cannot notify invalidations for `ep`: VT-d with
 * snoop-control=on), -EINVAL (NULL ep, len or host, *len 0, flags,
 * fault->size). A DMA call (any thread). */
VIOMMU_API int viommu_dma_map_host(viommu_ep *ep, uint64_t iova,
                                   uint64_t *len, uint32_t flags, void *cookie,
                                   void **host, struct viommu_dma_fault *fault);
/* Unmaps a mapping of `ep`: `host` and `len` as viommu_dma_map_host set
 * them; `access_len` (<= len) is how many bytes the device accessed
 * (accepted for QEMU's shape; no dirty tracking yet). Once it returns, no
 * dma_revoked call for the mapping runs or will run (it waits for one
 * running on another thread; so dma_revoked must not wait for a thread
 * that may be unmapping that very mapping). Returns 0, -ENOENT (no such live mapping:
 * already unmapped, or dropped by viommu_ep_free), -EINVAL (NULL ep or
 * host, access_len > len). A DMA call (any thread, also from dma_revoked). */
VIOMMU_API int viommu_dma_unmap_host(viommu_ep *ep, void *host, uint64_t len,
                                     uint64_t access_len);

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

/* ---- VFIO: host devices (control calls) -------------------------------- */

typedef struct viommu_vfio viommu_vfio; /* a host device attached for DMA */

/* How viommu_vfio_attach reaches the host IOMMU. */
#define VIOMMU_VFIO_AUTO 0    /* iommufd when the device has a VFIO cdev
                               * (/dev/vfio/devices/vfioN), else type1 */
#define VIOMMU_VFIO_TYPE1 1   /* legacy container + group (type1v2) */
#define VIOMMU_VFIO_IOMMUFD 2 /* /dev/iommu + the device's cdev */

/* Attaches host device `host` ("SSSS:BB:DD.F" or "BB:DD.F") as endpoint
 * `ep`: its DMA then goes through ep's translation into guest RAM, mapped
 * in a host IOMMU container that follows ep's DMA space (the guest memory
 * map for an identity endpoint, shared by every identity endpoint's
 * device; the vIOMMU's mappings for one behind a vIOMMU, VT-d needing
 * caching-mode=on). An existing container of the same DMA space and
 * backend takes the device if the host accepts it, else a new one is
 * made and maps the space before this returns. IOVAs outside the host's
 * valid ranges (aperture minus reserved regions; viommu_ep_iova_ranges)
 * are not mapped. Behind a vIOMMU, the vIOMMU learns the host IOMMU's
 * limits (VT-d refuses aw-bits wider than its aperture). One host device
 * per endpoint. Guest RAM a container maps must be page aligned in gpa
 * and hva (mmap'd): the host IOMMU maps pages. Fires iova_ranges_changed
 * for every endpoint whose ranges it changed. Sets *out.
 * Errors: -EINVAL (NULL, bad address or mode; VT-d without caching mode;
 * RAM the host cannot map, e.g. an hva not page aligned;
 * the vIOMMU refusing the host's limits; the group already attached
 * behind another endpoint's DMA space), -ENOENT (no such host device, or
 * no cdev for IOMMUFD), -EEXIST (ep has a host device, or the device is
 * attached already), -ENOMEM; a host call's errno (-EPERM, -EBUSY, ...);
 * -EBUSY, -EDEADLK. Nothing is left attached on error. */
VIOMMU_API int viommu_vfio_attach(viommu_ep *ep, const char *host,
                                  uint32_t mode, viommu_vfio **out);
/* Detaches and frees the handle; when it was its container's last
 * device, the container unmaps everything and is released. Fires
 * iova_ranges_changed as attach does. viommu_ep_free and viommu_ctx_free
 * detach what is left. Cannot fail; NULL is a no-op. */
VIOMMU_API void viommu_vfio_detach(viommu_vfio *dev);

/* VFIO_DEVICE_GET_REGION_INFO's flags. */
#define VIOMMU_VFIO_REGION_F_READ (1u << 0)
#define VIOMMU_VFIO_REGION_F_WRITE (1u << 1)
#define VIOMMU_VFIO_REGION_F_MMAP (1u << 2)

/* PCI region indexes (VFIO's): BARs 0-5, ROM 6, config space 7. */
#define VIOMMU_VFIO_PCI_BAR0 0
#define VIOMMU_VFIO_PCI_CONFIG 7

struct viommu_vfio_region {
  size_t size;    /* in: sizeof */
  uint32_t flags; /* VIOMMU_VFIO_REGION_F_* */
  uint32_t reserved;
  uint64_t len;    /* bytes; 0: the device has no such region */
  uint64_t offset; /* its offset in the device fd (pread/pwrite/mmap) */
};

/* Describes region `index` of the device. Filled up to info->size.
 * Errors: -EINVAL (NULL, info->size too small, no such index), a host
 * call's errno, -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_vfio_region_info(viommu_vfio *dev, uint32_t index,
                                       struct viommu_vfio_region *info);
/* Reads (is_write 0) or writes `len` bytes at `offset` in region `index`
 * (the VFIO device fd's pread/pwrite): config space, a BAR's registers.
 * On the model host a write may start the device's DMA, which runs
 * before this returns, through the host IOMMU container.
 * Errors: -EINVAL (NULL buf with len > 0, no such region, [offset,
 * offset + len) not inside it, region not readable / writable), -EIO (the
 * device refused it: e.g. a BAR while the command register's memory
 * decode is off, or a short transfer), a host call's errno, -EBUSY,
 * -EDEADLK. */
VIOMMU_API int viommu_vfio_region_rw(viommu_vfio *dev, uint32_t index,
                                     uint64_t offset, void *buf, size_t len,
                                     int is_write);
/* The VFIO device fd, for the VMM's own mmap of BARs and interrupt setup
 * (VFIO_DEVICE_SET_IRQS with its eventfds). Owned by the library: do not
 * close it; valid until viommu_vfio_detach. "linux" host only.
 * Errors: -EOPNOTSUPP (the model host: its device fds are in-process
 * handles, not kernel fds; use viommu_vfio_region_rw), -EINVAL (NULL), a
 * host call's errno, -EBUSY, -EDEADLK. */
VIOMMU_API int viommu_vfio_device_fd(viommu_vfio *dev, int *fd);

/* One IOVA range, inclusive: [start, end]. A fixed layout (never grows). */
struct viommu_iova_range {
  uint64_t start;
  uint64_t end;
};

/* The IOVA ranges `ep`'s DMA may use, sorted and disjoint: with a host
 * device attached, the host IOMMU's valid ranges of its container
 * (aperture minus reserved regions; x-query-vfio's "iova-ranges"), else
 * one range [0, 2^64 - 1]. Writes the first min(n, *count) ranges and
 * sets *count to how many there are. A control call, which may also be
 * made from the iova_ranges_changed callback.
 * Errors: -EINVAL (NULL ep or count, NULL ranges with n > 0), -EBUSY,
 * -EDEADLK. */
VIOMMU_API int viommu_ep_iova_ranges(viommu_ep *ep,
                                     struct viommu_iova_range *ranges,
                                     size_t n, size_t *count);

/* ---- State queries ------------------------------------------------------ */

/* The state `what` names as JSON text (NUL-terminated, allocated by the
 * library: free it with viommu_free). "x-query-vfio" (or "vfio"): the
 * VFIO containers, in the schema of QMP x-query-vfio
 * ({"containers": [{"id", "backend", "address-space", "devices",
 * "iova-ranges", "mappings", "dma-avail", "skipped"}]}; docs/embedding.md).
 * Errors: -EINVAL (NULL), -EOPNOTSUPP (unknown `what`), -ENOMEM, -EBUSY,
 * -EDEADLK. */
VIOMMU_API int viommu_query_json(viommu_ctx *ctx, const char *what,
                                 char **json);
/* Frees what the library allocated for the caller (viommu_query_json).
 * NULL is a no-op. Any thread. */
VIOMMU_API void viommu_free(void *p);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VIOMMU_H_ */
