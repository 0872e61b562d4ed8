/*
 * leak_canary — a C program on <viommu.h> that builds a context (RAM,
 * VT-d, an endpoint) and exits WITHOUT viommu_ctx_free. Under ASan with
 * detect_leaks=1 it must be reported: tests/capi/asan_leak_check.sh runs
 * it to prove that the sanitizer tree's leak check of examples/minivmm
 * (which frees everything) is live, not silently disabled.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu.h>

int main(void) {
  struct viommu_config cfg;
  struct viommu_region ram;
  viommu_ctx *ctx = NULL;
  viommu_iommu *vtd = NULL;
  viommu_ep *ep = NULL;
  uint32_t id = 0;
  void *mem = calloc(1, 1u << 20);
  memset(&cfg, 0, sizeof cfg);
  cfg.size = sizeof cfg;
  if (mem == NULL || viommu_ctx_new(&cfg, NULL, NULL, &ctx) != 0) return 2;
  memset(&ram, 0, sizeof ram);
  ram.size = sizeof ram;
  ram.kind = VIOMMU_REGION_RAM;
  ram.len = 1u << 20;
  ram.hva = mem;
  ram.fd = -1;
  if (viommu_region_add(ctx, &ram, &id) != 0) return 2;
  if (viommu_iommu_new(ctx, "intel-iommu", NULL, &vtd) != 0) return 2;
  if (viommu_ep_new(ctx, 0, 0, 0x20, vtd, &ep) != 0) return 2;
  printf("leak_canary: context left allocated on purpose\n");
  ctx = NULL; /* the only reference: a leak LSan must report */
  return 0;
}
