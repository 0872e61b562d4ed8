// tests/fuzz/fuzz_trace.h — the reuse proof shared by the fuzz targets that
// keep one machine per process and reset it between inputs.
//
//   // in the target, where an observable output appears:
//   viommu::fuzz::Trace().Add(reply.data(), reply.size());
//   // replay_main.cc, per corpus input:
//   ViommuFuzzSetFresh(1);  ... run ... ViommuFuzzTraceHash()
//
// A target that reuses its machine defines the two C hooks below; the
// replay driver (replay_main.cc) runs each corpus input on a fresh machine
// and again after all the others on the reused one and fails when the
// traces differ, so an input's result never depends on what ran before.
// Tracing is off under libFuzzer (nothing calls ViommuFuzzSetFresh), so it
// costs nothing there.
//
// Threading: single-threaded (the fuzz driver's thread).
#ifndef VIOMMU_TESTS_FUZZ_FUZZ_TRACE_H_
#define VIOMMU_TESTS_FUZZ_FUZZ_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace viommu::fuzz {

// FNV-1a over everything an input made observable.
class TraceHash {
 public:
  void Clear() { h_ = kBasis; }
  void Add(const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < len; ++i) h_ = (h_ ^ p[i]) * kPrime;
  }
  void Add64(uint64_t v) { Add(&v, sizeof v); }
  uint64_t value() const { return h_; }

 private:
  static constexpr uint64_t kBasis = 0xcbf2'9ce4'8422'2325ull;
  static constexpr uint64_t kPrime = 0x100'0000'01b3ull;
  uint64_t h_ = kBasis;
};

// Replay-mode switches, set through the C hooks below.
struct ReplayMode {
  bool tracing = false;  // collect the trace (replay only)
  bool fresh = false;    // build a new machine for the next input
};

// VIOMMU_FUZZ_FRESH=1 in the environment: a new machine for every input
// (as before machines were reused; to triage a suspected reset bug, or to
// measure what the reuse saves).
inline ReplayMode& Mode() {
  static ReplayMode mode = [] {
    ReplayMode m;
    const char* env = std::getenv("VIOMMU_FUZZ_FRESH");
    m.fresh = env != nullptr && env[0] == '1';
    return m;
  }();
  return mode;
}

inline TraceHash& Trace() {
  static TraceHash trace;
  return trace;
}

}  // namespace viommu::fuzz

// Defined by every target that reuses its machine (FUZZ_TRACE_HOOKS below);
// weak in replay_main.cc, so targets without them replay once per input.
extern "C" void ViommuFuzzSetFresh(int fresh);
extern "C" uint64_t ViommuFuzzTraceHash();

// Defines the hooks in one target's translation unit.
#define VIOMMU_FUZZ_TRACE_HOOKS()                 \
  extern "C" void ViommuFuzzSetFresh(int fresh) { \
    viommu::fuzz::Mode().tracing = true;          \
    viommu::fuzz::Mode().fresh = fresh != 0;      \
  }                                               \
  extern "C" uint64_t ViommuFuzzTraceHash() {     \
    return viommu::fuzz::Trace().value();         \
  }

#endif  // VIOMMU_TESTS_FUZZ_FUZZ_TRACE_H_
