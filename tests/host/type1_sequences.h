// tests/host/type1_sequences.h — the fixed list of named type1 operation
// sequences that type1_differential runs against the model and the real
// kernel (differential.h has the output rules).
//
//   for (const Sequence& s : Type1Sequences()) {
//     env.Section(s.name);
//     s.run(env);
//   }
//
// Each sequence opens its own container/group (and device) fds and closes
// them before returning. Thread-safety: single-threaded test program.
#ifndef VIOMMU_TESTS_HOST_TYPE1_SEQUENCES_H_
#define VIOMMU_TESTS_HOST_TYPE1_SEQUENCES_H_

#include <functional>
#include <string>
#include <vector>

#include "tests/host/differential.h"

namespace viommu::vfio::difftest {

struct Sequence {
  std::string name;
  std::function<void(DiffEnv&)> run;
};

// In the order they run; names are unique.
const std::vector<Sequence>& Type1Sequences();

}  // namespace viommu::vfio::difftest

#endif  // VIOMMU_TESTS_HOST_TYPE1_SEQUENCES_H_
