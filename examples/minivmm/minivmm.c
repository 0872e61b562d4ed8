/*
 * minivmm — the smallest VMM that uses viommu as its DMA subsystem, in C99
 * against <viommu.h> only. It owns guest RAM (a memfd it maps), plays the
 * guest's VT-d driver itself (root/context/page tables written into that
 * RAM, registers programmed through the MMIO entry point, as its vCPU exit
 * handler would), and does DMA for an emulated device at 0000:00:04.0.
 *
 * It checks and prints:
 *   1. a DMA listener sees the guest RAM (identity, VT-d still off);
 *   2. after the guest maps IOVA 0x10000 -> GPA 0x200000 and turns VT-d
 *      on, the listener sees the RAM unmapped and the IOVA mapped;
 *   3. the device's DMA write to IOVA 0x10010 lands at GPA 0x200010;
 *   4. a DMA read of the unmapped IOVA 0x50000 fails with -EFAULT, a fault
 *      record (iova, requester id 0x0020, reason) and VT-d's fault-event
 *      MSI (FEADDR/FEDATA) reaches the msi callback;
 *   5. an access outside everything viommu emulates answers -ENOENT;
 *   6. the model host's device 0000:01:00.0, attached as 00:06.0 behind
 *      the same VT-d (the guest gives it a context entry on the same page
 *      tables), copies guest bytes through IOVA 0x10000: its edu DMA
 *      engine, programmed through its BAR0 with viommu_vfio_region_rw,
 *      reads IOVA 0x10100 and writes IOVA 0x10800, which land at GPA
 *      0x200100 / 0x200800; an IOVA the guest did not map moves nothing;
 *   7. 0000:02:00.0 attached as identity endpoint 00:07.0: its container
 *      mirrors guest memory, so RAM hot-add maps the new DIMM in it and
 *      hot-remove unmaps it (seen through viommu_query_json, x-query-vfio);
 *   8. detaching both leaves no container and no host mapping.
 * Exit status 0 only if every check held.
 *
 * Build against the installed library (the 'embed' suite's install test
 * does exactly this; in the tree: meson test -C build --suite embed):
 *   cc -std=c99 -Wall -Wextra -Werror -pedantic minivmm.c \
 *      $(pkg-config --cflags --libs viommu)
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <viommu.h>

#define RAM_SIZE (64u << 20)
#define VTD_BASE 0xfed90000u
#define ROOT_TABLE 0x100000u /* guest tables live in guest RAM */
#define CONTEXT_TABLE 0x101000u
#define PT_L3 0x102000u
#define PT_L2 0x103000u
#define PT_L1 0x104000u
#define DEVFN (4u << 3) /* 00:04.0 */
#define DOMAIN 1u

static int failures;
static unsigned msis;
static uint32_t last_msi_data;
static unsigned maps, unmaps;

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (cond) {                                                         \
      printf("  ok    %s\n", #cond);                                    \
    } else {                                                            \
      printf("  FAIL  %s (%s:%d)\n", #cond, __FILE__, __LINE__);        \
      ++failures;                                                       \
    }                                                                   \
  } while (0)

static void on_log(void *opaque, int level, const char *msg) {
  (void)opaque;
  if (level <= VIOMMU_LOG_WARNING) printf("  log   %s\n", msg);
}

static unsigned faults; /* fault callbacks */

static void on_fault(void *opaque, viommu_ep *ep,
                     const struct viommu_dma_fault *f) {
  (void)opaque;
  (void)ep;
  ++faults;
  printf("  fault iova 0x%" PRIx64 " sid 0x%" PRIx32 " reason %" PRIu32 "\n",
         f->iova, f->sid, f->reason);
}

static void on_msi(void *opaque, uint64_t addr, uint32_t data, uint32_t sid) {
  (void)opaque;
  ++msis;
  last_msi_data = data;
  printf("  msi   addr 0x%" PRIx64 " data 0x%" PRIx32 " sid 0x%" PRIx32 "\n",
         addr, data, sid);
}

static void on_map(void *opaque, const struct viommu_dma_map *m) {
  (void)opaque;
  ++maps;
  printf("  map   iova 0x%" PRIx64 " -> gpa 0x%" PRIx64 " +0x%" PRIx64
         " perm %" PRIu32 " fd %" PRId32 "@0x%" PRIx64 "\n",
         m->iova, m->gpa, m->len, m->perm, m->fd, m->fd_offset);
}

static unsigned ranges_changed;

static void on_iova_ranges_changed(void *opaque, viommu_ep *ep) {
  struct viommu_iova_range r[4];
  size_t n = 0, i;
  (void)opaque;
  ++ranges_changed;
  if (viommu_ep_iova_ranges(ep, r, 4, &n) != 0) return;
  printf("  iova ranges now:");
  for (i = 0; i < n && i < 4; ++i) {
    printf(" [0x%" PRIx64 ", 0x%" PRIx64 "]", r[i].start, r[i].end);
  }
  printf("\n");
}

static void on_unmap(void *opaque, uint64_t iova, uint64_t len) {
  (void)opaque;
  ++unmaps;
  printf("  unmap iova 0x%" PRIx64 " +0x%" PRIx64 "\n", iova, len);
}

/* The guest's view of its own RAM. */
static uint8_t *ram;

static void guest_write64(uint64_t gpa, uint64_t v) {
  memcpy(ram + gpa, &v, sizeof v);
}

/* The vCPU exit handler's path to VT-d's registers. */
static void vtd_write(viommu_ctx *ctx, uint32_t off, uint64_t v,
                      uint32_t size) {
  if (viommu_mmio_access(ctx, VTD_BASE + off, &v, size, 1) != 0) {
    printf("  FAIL  VT-d register write 0x%" PRIx32 "\n", off);
    ++failures;
  }
}

/* ---- VFIO: a host device doing DMA through VT-d ---- */

#define PT_DEVFN (6u << 3)   /* 00:06.0: the passthrough device */
#define ID_DEVFN (7u << 3)   /* 00:07.0: identity-mapped passthrough */
#define EDU_DMA_SRC 0x80u
#define EDU_DMA_DST 0x88u
#define EDU_DMA_COUNT 0x90u
#define EDU_DMA_CMD 0x98u
#define EDU_BUFFER 0x40000u /* the edu's device-side buffer */
#define DIMM_GPA 0x40000000u
#define DIMM_SIZE (1u << 20)

/* A 64-bit register write into the host device's BAR0. */
static void edu_write(viommu_vfio *dev, uint32_t off, uint64_t v) {
  if (viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_BAR0, off, &v, 8, 1) != 0) {
    printf("  FAIL  host BAR0 write 0x%" PRIx32 "\n", off);
    ++failures;
  }
}

/* One edu DMA: RAM -> device (to_ram 0) or device -> RAM (to_ram 1). */
static void edu_dma(viommu_vfio *dev, uint64_t src, uint64_t dst,
                    uint64_t len, int to_ram) {
  edu_write(dev, EDU_DMA_SRC, src);
  edu_write(dev, EDU_DMA_DST, dst);
  edu_write(dev, EDU_DMA_COUNT, len);
  edu_write(dev, EDU_DMA_CMD, to_ram ? 3 : 1); /* run (| device -> RAM) */
}

/* "mappings" of the container on address space `as` in x-query-vfio, or
 * -1 when there is none. */
static long container_mappings(viommu_ctx *ctx, const char *as) {
  char *json = NULL, key[64];
  const char *p;
  long n = -1;
  if (viommu_query_json(ctx, "x-query-vfio", &json) != 0) return -2;
  snprintf(key, sizeof key, "\"address-space\": \"%s\"", as);
  p = strstr(json, key);
  if (p != NULL && (p = strstr(p, "\"mappings\": ")) != NULL) {
    n = strtol(p + strlen("\"mappings\": "), NULL, 10);
  }
  viommu_free(json);
  return n;
}

static void vfio_passthrough(viommu_ctx *ctx, viommu_iommu *vtd) {
  viommu_ep *pt = NULL;
  viommu_vfio *dev = NULL;
  uint16_t cmd = 0x6; /* COMMAND: MEMORY | MASTER */
  uint8_t pattern[64], got[64];
  unsigned i;
  int r;

  printf("6. host device 0000:01:00.0 as 00:06.0 behind VT-d\n");
  /* The guest gives 00:06.0 a context entry on the same page tables. */
  guest_write64(CONTEXT_TABLE + PT_DEVFN * 16, PT_L3 | 1);
  guest_write64(CONTEXT_TABLE + PT_DEVFN * 16 + 8,
                1u | (uint64_t)DOMAIN << 8);
  CHECK(viommu_ep_new(ctx, 0, 0, PT_DEVFN, vtd, &pt) == 0);
  r = viommu_vfio_attach(pt, "0000:01:00.0", VIOMMU_VFIO_TYPE1, &dev);
  CHECK(r == 0);
  if (r != 0) return;
  CHECK(ranges_changed == 1); /* the host's reserved MSI window */
  CHECK(container_mappings(ctx, "vtd-06.0") == 1); /* IOVA 0x10000 */
  for (i = 0; i < sizeof pattern; ++i) pattern[i] = (uint8_t)(0xa0 + i);
  memcpy(ram + 0x200100, pattern, sizeof pattern);
  CHECK(viommu_vfio_region_rw(dev, VIOMMU_VFIO_PCI_CONFIG, 4, &cmd, 2, 1) ==
        0);
  edu_dma(dev, 0x10100, EDU_BUFFER, sizeof pattern, 0); /* IOVA -> device */
  edu_dma(dev, EDU_BUFFER, 0x10800, sizeof pattern, 1); /* device -> IOVA */
  memcpy(got, ram + 0x200800, sizeof got);
  CHECK(memcmp(got, pattern, sizeof got) == 0);
  /* IOVA 0x50000 is not mapped by the guest: the host IOMMU blocks it. */
  memset(ram + 0x50000, 0xee, sizeof got);
  edu_dma(dev, EDU_BUFFER, 0x50000, sizeof pattern, 1);
  CHECK(ram[0x50000] == 0xee);
  viommu_vfio_detach(dev);
  CHECK(container_mappings(ctx, "vtd-06.0") == -1);
  viommu_ep_free(pt);
}

static void ram_hotplug(viommu_ctx *ctx) {
  viommu_ep *ep = NULL;
  viommu_vfio *dev = NULL;
  struct viommu_region dimm;
  uint32_t dimm_id = 0;
  uint8_t *mem;
  char *json = NULL;

  printf("7. RAM hot-add / hot-remove reach the container of 00:07.0\n");
  mem = mmap(NULL, DIMM_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    ++failures;
    return;
  }
  CHECK(viommu_ep_new(ctx, 0, 0, ID_DEVFN, NULL, &ep) == 0);
  CHECK(viommu_vfio_attach(ep, "0000:02:00.0", VIOMMU_VFIO_AUTO, &dev) == 0);
  CHECK(container_mappings(ctx, "memory") == 1); /* guest RAM */
  memset(&dimm, 0, sizeof dimm);
  dimm.size = sizeof dimm;
  dimm.kind = VIOMMU_REGION_RAM;
  dimm.gpa = DIMM_GPA;
  dimm.len = DIMM_SIZE;
  dimm.hva = mem;
  dimm.fd = -1;
  dimm.name = "dimm0";
  CHECK(viommu_region_add(ctx, &dimm, &dimm_id) == 0);
  CHECK(container_mappings(ctx, "memory") == 2);
  CHECK(viommu_region_del(ctx, dimm_id) == 0);
  CHECK(container_mappings(ctx, "memory") == 1);

  printf("8. detach: no container, no host mapping left\n");
  viommu_vfio_detach(dev);
  CHECK(viommu_query_json(ctx, "x-query-vfio", &json) == 0 && json != NULL &&
        strcmp(json, "{\"containers\": []}") == 0);
  if (json != NULL) printf("  x-query-vfio %s\n", json);
  viommu_free(json);
  viommu_ep_free(ep);
  munmap(mem, DIMM_SIZE);
}

int main(void) {
  struct viommu_config cfg;
  struct viommu_callbacks cb;
  struct viommu_region region;
  struct viommu_dma_listener listener;
  struct viommu_dma_fault fault;
  viommu_ctx *ctx = NULL;
  viommu_iommu *vtd = NULL;
  viommu_ep *ep = NULL;
  uint32_t ram_id = 0, listener_id = 0;
  uint64_t payload = 0x1122334455667788u, got = 0, v = 0;
  uint32_t word = 0;
  int memfd, r;

  printf("minivmm: viommu ABI %" PRIu32 ".%" PRIu32 "\n",
         viommu_abi_version() >> 16, viommu_abi_version() & 0xffff);

  /* Guest RAM: a memfd, mapped shared (vhost/vfio-user would pass the fd). */
  memfd = memfd_create("guest-ram", MFD_CLOEXEC);
  if (memfd < 0 || ftruncate(memfd, RAM_SIZE) != 0) return 2;
  ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (ram == MAP_FAILED) return 2;

  memset(&cfg, 0, sizeof cfg);
  cfg.size = sizeof cfg;
  cfg.host = "model"; /* the in-process model host (the default) */
  memset(&cb, 0, sizeof cb);
  cb.size = sizeof cb;
  cb.log = on_log;
  cb.msi = on_msi;
  cb.fault = on_fault;
  cb.iova_ranges_changed = on_iova_ranges_changed;
  if (viommu_ctx_new(&cfg, &cb, NULL, &ctx) != 0) return 2;

  memset(&region, 0, sizeof region);
  region.size = sizeof region;
  region.kind = VIOMMU_REGION_RAM;
  region.gpa = 0;
  region.len = RAM_SIZE;
  region.hva = ram;
  region.fd = memfd;
  region.fd_offset = 0;
  region.name = "ram";
  CHECK(viommu_region_add(ctx, &region, &ram_id) == 0);
  CHECK(viommu_iommu_new(ctx, "intel-iommu", "caching-mode=on", &vtd) == 0);
  CHECK(viommu_ep_new(ctx, 0, 0, DEVFN, vtd, &ep) == 0);

  printf("1. DMA listener on 0000:00:04.0 (VT-d off)\n");
  memset(&listener, 0, sizeof listener);
  listener.size = sizeof listener;
  listener.map = on_map;
  listener.unmap = on_unmap;
  CHECK(viommu_dma_listener_add(ep, &listener, &listener_id) == 0);
  CHECK(maps == 1 && unmaps == 0);

  printf("2. the guest maps IOVA 0x10000 -> GPA 0x200000, turns VT-d on\n");
  guest_write64(ROOT_TABLE, CONTEXT_TABLE | 1);           /* bus 0 */
  guest_write64(CONTEXT_TABLE + DEVFN * 16, PT_L3 | 1);   /* present */
  guest_write64(CONTEXT_TABLE + DEVFN * 16 + 8,
                1u /* 3 levels */ | (uint64_t)DOMAIN << 8);
  guest_write64(PT_L3, PT_L2 | 3);
  guest_write64(PT_L2, PT_L1 | 3);
  guest_write64(PT_L1 + (0x10000 >> 12) * 8, 0x200000 | 3); /* R+W */
  vtd_write(ctx, 0x3c, 0x41, 4);       /* FEDATA */
  vtd_write(ctx, 0x40, 0xfee00000, 4); /* FEADDR */
  vtd_write(ctx, 0x38, 0, 4);          /* FECTL: unmask fault events */
  vtd_write(ctx, 0x20, ROOT_TABLE, 8); /* RTADDR */
  vtd_write(ctx, 0x18, 1u << 30, 4);   /* GCMD.SRTP */
  vtd_write(ctx, 0x18, 1u << 31, 4);   /* GCMD.TE */
  CHECK(viommu_mmio_access(ctx, VTD_BASE + 0x1c, &v, 4, 0) == 0 &&
        (v & (1u << 31)) != 0); /* GSTS.TES */
  CHECK(maps == 2 && unmaps == 1);

  printf("3. device DMA write to IOVA 0x10010\n");
  CHECK(viommu_dma_rw(ep, 0x10010, &payload, sizeof payload, VIOMMU_DMA_WRITE,
                      NULL) == 0);
  memcpy(&got, ram + 0x200010, sizeof got);
  CHECK(got == payload);

  printf("4. device DMA read of unmapped IOVA 0x50000\n");
  memset(&fault, 0, sizeof fault);
  fault.size = sizeof fault;
  r = viommu_dma_rw(ep, 0x50000, &word, sizeof word, VIOMMU_DMA_READ, &fault);
  printf("  dma_rw -> %d, fault iova 0x%" PRIx64 " sid 0x%" PRIx32
         " reason %" PRIu32 " %s\n",
         r, fault.iova, fault.sid, fault.reason,
         (fault.flags & VIOMMU_FAULT_F_WRITE) ? "write" : "read");
  CHECK(r == -EFAULT);
  CHECK(fault.iova == 0x50000 && fault.sid == DEVFN &&
        fault.reason == VIOMMU_FAULT_TRANSLATION);
  CHECK(msis == 1 && last_msi_data == 0x41);
  CHECK(faults == 1); /* the fault callback got the same record */

  printf("5. an address no region of ours covers\n");
  CHECK(viommu_mmio_access(ctx, 0xc0000000u, &v, 4, 0) == -ENOENT);

  vfio_passthrough(ctx, vtd);
  ram_hotplug(ctx);

  CHECK(viommu_dma_listener_del(ep, listener_id) == 0);
  CHECK(unmaps == 2);
  viommu_ep_free(ep);
  CHECK(viommu_iommu_free(vtd) == 0);
  CHECK(viommu_region_del(ctx, ram_id) == 0);
  viommu_ctx_free(ctx);
  munmap(ram, RAM_SIZE);
  close(memfd);
  printf("minivmm: %s\n", failures == 0 ? "every check held" : "FAILED");
  return failures == 0 ? 0 : 1;
}
