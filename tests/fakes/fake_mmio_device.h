// tests/fakes/fake_mmio_device.h — an MmioOps with configurable access
// rules that records every callback and serves reads from a byte array.
//
//   FakeMmioDevice dev(/*size=*/0x100);
//   dev.set_valid({1, 8, false});
//   auto mr = MemoryRegion::CreateMmio(&sys, "dev", 0x100, &dev);
//   ... EXPECT_THAT(dev.accesses(), ElementsAre("w 0x0/4=0x12345678"));
#ifndef VIOMMU_TESTS_FAKES_FAKE_MMIO_DEVICE_H_
#define VIOMMU_TESTS_FAKES_FAKE_MMIO_DEVICE_H_

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "viommu/memory/mmio_ops.h"

namespace viommu::memory::testing {

class FakeMmioDevice final : public MmioOps {
 public:
  explicit FakeMmioDevice(size_t size) : bytes_(size + 8, 0) {}

  MemTxResult Read(uint64_t offset, uint64_t* value, unsigned size,
                   MemTxAttrs attrs) override {
    last_attrs_ = attrs;
    uint64_t v = 0;
    if (offset + size <= bytes_.size()) std::memcpy(&v, &bytes_[offset], size);
    *value = v;
    accesses_.push_back(absl::StrFormat("r 0x%x/%d", offset, size));
    return read_result_;
  }
  MemTxResult Write(uint64_t offset, uint64_t value, unsigned size,
                    MemTxAttrs attrs) override {
    last_attrs_ = attrs;
    if (offset + size <= bytes_.size()) std::memcpy(&bytes_[offset], &value, size);
    accesses_.push_back(absl::StrFormat("w 0x%x/%d=0x%x", offset, size, value));
    return write_result_;
  }
  AccessRules valid() const override { return valid_; }
  AccessRules impl() const override { return impl_; }

  void set_valid(AccessRules r) { valid_ = r; }
  void set_impl(AccessRules r) { impl_ = r; }
  void set_read_result(MemTxResult r) { read_result_ = r; }
  void set_write_result(MemTxResult r) { write_result_ = r; }
  std::vector<uint8_t>& bytes() { return bytes_; }
  const std::vector<std::string>& accesses() const { return accesses_; }
  void ClearAccesses() { accesses_.clear(); }
  MemTxAttrs last_attrs() const { return last_attrs_; }

 private:
  std::vector<uint8_t> bytes_;
  std::vector<std::string> accesses_;
  AccessRules valid_;
  AccessRules impl_;
  MemTxResult read_result_;
  MemTxResult write_result_;
  MemTxAttrs last_attrs_;
};

}  // namespace viommu::memory::testing

#endif  // VIOMMU_TESTS_FAKES_FAKE_MMIO_DEVICE_H_
