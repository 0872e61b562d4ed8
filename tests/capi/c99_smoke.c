/* tests/capi/c99_smoke.c — viommu.h from C99 (-std=c99 -pedantic
 * -Werror): create a context, add RAM, DMA through an identity endpoint
 * and a VT-d one, see -ENOENT and -EFAULT. Exit status 0 when every check
 * held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viommu.h"

static int failures;

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,     \
              __LINE__, #cond);                                  \
      ++failures;                                                \
    }                                                            \
  } while (0)

static void log_cb(void *opaque, int level, const char *msg) {
  (void)opaque;
  (void)level;
  (void)msg;
}

int main(void) {
  struct viommu_config cfg;
  struct viommu_callbacks cb;
  struct viommu_region ram;
  struct viommu_dma_fault fault;
  viommu_ctx *ctx = NULL;
  viommu_iommu *iommu = NULL;
  viommu_ep *ep = NULL;
  viommu_ep *ep2 = NULL;
  uint32_t id = 0;
  uint64_t v = 0;
  unsigned char *mem = calloc(1, 1 << 20);
  char buf[8] = "c99";

  CHECK(mem != NULL);
  CHECK(viommu_abi_version() == VIOMMU_ABI_VERSION);
  memset(&cfg, 0, sizeof cfg);
  cfg.size = sizeof cfg;
  memset(&cb, 0, sizeof cb);
  cb.size = sizeof cb;
  cb.log = log_cb;
  CHECK(viommu_ctx_new(&cfg, &cb, NULL, &ctx) == 0);

  memset(&ram, 0, sizeof ram);
  ram.size = sizeof ram;
  ram.kind = VIOMMU_REGION_RAM;
  ram.gpa = 0;
  ram.len = 1 << 20;
  ram.hva = mem;
  ram.fd = -1;
  CHECK(viommu_region_add(ctx, &ram, &id) == 0);

  CHECK(viommu_ep_new(ctx, 0, 0, 0x20, NULL, &ep) == 0);
  CHECK(viommu_dma_rw(ep, 0x100, buf, sizeof buf, VIOMMU_DMA_WRITE, NULL) ==
        0);
  CHECK(strcmp((char *)mem + 0x100, "c99") == 0);
  CHECK(viommu_mmio_access(ctx, 0x4000000, &v, 4, 0) == -ENOENT);

  CHECK(viommu_iommu_new(ctx, "intel-iommu", "caching-mode=on", &iommu) ==
        0);
  CHECK(viommu_ep_new(ctx, 0, 0, 0x28, iommu, &ep2) == 0);
  /* Root table at 0x10000 (empty), then SRTP and TE: every DMA faults. */
  v = 0x10000;
  CHECK(viommu_mmio_access(ctx, 0xfed90020, &v, 8, 1) == 0);
  v = 1u << 30;
  CHECK(viommu_mmio_access(ctx, 0xfed90018, &v, 4, 1) == 0);
  v = 1u << 31;
  CHECK(viommu_mmio_access(ctx, 0xfed90018, &v, 4, 1) == 0);
  memset(&fault, 0, sizeof fault);
  fault.size = sizeof fault;
  CHECK(viommu_dma_rw(ep2, 0x2000, buf, 4, VIOMMU_DMA_READ, &fault) ==
        -EFAULT);
  CHECK(fault.reason == VIOMMU_FAULT_TRANSLATION);
  CHECK(fault.sid == 0x28);

  viommu_ep_free(ep2);
  CHECK(viommu_iommu_free(iommu) == 0);
  CHECK(viommu_region_del(ctx, id) == 0);
  viommu_ctx_free(ctx);
  free(mem);
  if (failures == 0) printf("c99 smoke: ok\n");
  return failures == 0 ? 0 : 1;
}
