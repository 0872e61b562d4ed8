// viommu/util/tsan.h — VIOMMU_TSAN, defined to 1 when the translation unit
// is built with ThreadSanitizer (g++'s __SANITIZE_THREAD__ or clang's
// __has_feature(thread_sanitizer)).
//
// Code that is correct but invisible to TSan (a seqlock's racy data reads,
// ordered by fences TSan does not model) switches to an equivalent that
// TSan can see under `#ifdef VIOMMU_TSAN`.
#ifndef VIOMMU_UTIL_TSAN_H_
#define VIOMMU_UTIL_TSAN_H_

#if !defined(VIOMMU_TSAN)
#if defined(__SANITIZE_THREAD__)
#define VIOMMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VIOMMU_TSAN 1
#endif
#endif
#endif

#endif  // VIOMMU_UTIL_TSAN_H_
