// tests/fuzz/fuzz_input.h — a fuzz input read front to back as
// little-endian fields; bytes past the end read as zero, so every input
// is a complete program.
//
//   FuzzInput in(data, size);
//   while (!in.empty()) Step(in.U8(), in.U64());
//
// Each multi-byte read takes its bytes in order (low byte first) in
// sequenced statements: `U8() | U8() << 8` would leave the order to the
// compiler, and g++ and clang would read the same input differently.
#ifndef VIOMMU_TESTS_FUZZ_FUZZ_INPUT_H_
#define VIOMMU_TESTS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>

namespace viommu::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return n_ == 0; }
  uint8_t U8() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  uint16_t U16() {
    const uint16_t lo = U8();
    return static_cast<uint16_t>(lo | U8() << 8);
  }
  uint32_t U32() {
    const uint32_t lo = U16();
    return lo | uint32_t{U16()} << 16;
  }
  uint64_t U64() {
    const uint64_t lo = U32();
    return lo | uint64_t{U32()} << 32;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

}  // namespace viommu::fuzz

#endif  // VIOMMU_TESTS_FUZZ_FUZZ_INPUT_H_
