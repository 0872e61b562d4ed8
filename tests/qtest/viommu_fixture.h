// tests/qtest/viommu_fixture.h — a GoogleTest fixture that starts
// build/viommu (path in $VIOMMU_BINARY) with `-qtest stdio` and the given
// machine arguments, and fails the test if the machine stops answering.
#ifndef VIOMMU_TESTS_QTEST_VIOMMU_FIXTURE_H_
#define VIOMMU_TESTS_QTEST_VIOMMU_FIXTURE_H_

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/qtest/qpci.h"
#include "tests/qtest/qtest_client.h"

namespace viommu::qtest {

class ViommuTest : public ::testing::Test {
 protected:
  // Starts the machine; call from the test body or SetUp.
  void Start(std::vector<std::string> args) {
    const char* bin = std::getenv("VIOMMU_BINARY");
    ASSERT_NE(bin, nullptr) << "VIOMMU_BINARY is not set";
    std::vector<std::string> argv = {bin, "-M", "q35", "-qtest", "stdio"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto c = QtestClient::Spawn(std::move(argv));
    ASSERT_TRUE(c.ok()) << c.status();
    qts_ = *std::move(c);
    bus_ = std::make_unique<QPciBus>(qts_.get());
  }
  void TearDown() override {
    if (qts_) {
      EXPECT_FALSE(qts_->failed()) << qts_->last_error();
    }
  }
  QtestClient& qts() { return *qts_; }
  QPciBus& bus() { return *bus_; }

  std::unique_ptr<QtestClient> qts_;
  std::unique_ptr<QPciBus> bus_;
};

}  // namespace viommu::qtest

#endif  // VIOMMU_TESTS_QTEST_VIOMMU_FIXTURE_H_
