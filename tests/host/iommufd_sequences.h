// tests/host/iommufd_sequences.h — the fixed list of named iommufd operation
// sequences (/dev/iommu, the VFIO device cdev, VFIO compat on /dev/iommu)
// that type1_differential --sequences=iommufd runs against the model and a
// real Linux 6.12 kernel (differential.h has the output rules;
// docs/real-kernel-tests.md lists them).
//
//   for (const Sequence& s : IommufdSequences()) {
//     env.Section(s.name);
//     s.run(env);
//   }
//
// Each sequence opens its own /dev/iommu and cdev fds and closes them before
// returning. Object ids, IOVAs (buffers are 2 MiB aligned, so automatic
// IOVAs are deterministic) and errnos are compared; vaddrs print relative to
// their buffer. Thread-safety: single-threaded test program.
#ifndef VIOMMU_TESTS_HOST_IOMMUFD_SEQUENCES_H_
#define VIOMMU_TESTS_HOST_IOMMUFD_SEQUENCES_H_

#include <vector>

#include "tests/host/type1_sequences.h"

namespace viommu::vfio::difftest {

// In the order they run; names are unique.
const std::vector<Sequence>& IommufdSequences();

}  // namespace viommu::vfio::difftest

#endif  // VIOMMU_TESTS_HOST_IOMMUFD_SEQUENCES_H_
