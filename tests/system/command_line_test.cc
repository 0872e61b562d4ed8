#include "viommu/system/command_line.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace viommu::system {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

[[nodiscard]] absl::StatusOr<VmConfig> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args);
}

TEST(CommandLineTest, QemuConformanceInvocationParses) {
  auto c = Parse({"-machine", "q35", "-accel", "tcg", "-qtest", "stdio",
                  "-qtest-log", "/dev/null", "-display", "none", "-nodefaults",
                  "-bios", "HLT.BIN", "-m", "256M", "-device",
                  "intel-iommu,caching-mode=on", "-device", "edu,addr=04.0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->machine, "q35");
  EXPECT_EQ(c->ram_size, 256u << 20);
  EXPECT_EQ(*c->qtest, "stdio");
  EXPECT_EQ(*c->qtest_log, "/dev/null");
  ASSERT_EQ(c->devices.size(), 2u);
  EXPECT_EQ(c->devices[0].head, "intel-iommu");
  EXPECT_THAT(c->devices[0].props, ElementsAre(Pair("caching-mode", "on")));
  EXPECT_EQ(c->devices[1].head, "edu");
  EXPECT_EQ(*c->devices[1].Get("addr"), "04.0");
}

TEST(CommandLineTest, DriverKeyAndDoubleDashAreAccepted) {
  auto c = Parse({"--device", "driver=edu,id=e0", "-M", "q35,vfio-host=linux"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->devices[0].head, "edu");
  EXPECT_EQ(*c->devices[0].Get("id"), "e0");
  EXPECT_EQ(c->vfio_host, "linux");
}

TEST(CommandLineTest, DoubledCommaIsLiteral) {
  auto l = ParseOptionList("socket,path=/tmp/a,,b,id=c", "backend");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->head, "socket");
  EXPECT_THAT(l->props, ElementsAre(Pair("path", "/tmp/a,b"), Pair("id", "c")));
}

TEST(CommandLineTest, SizesFollowQemuSuffixes) {
  EXPECT_EQ(*ParseSize("256M", 'M'), 256u << 20);
  EXPECT_EQ(*ParseSize("2G", 'M'), 2ull << 30);
  EXPECT_EQ(*ParseSize("1024", 'M'), 1ull << 30);
  EXPECT_EQ(*ParseSize("4k", 'M'), 4096u);
  EXPECT_FALSE(ParseSize("", 'M').ok());
  EXPECT_FALSE(ParseSize("12Q", 'M').ok());
  EXPECT_FALSE(ParseSize("-1", 'M').ok());
  EXPECT_FALSE(ParseSize("99999999999999E", 'M').ok());
}

TEST(CommandLineTest, MemoryAcceptsSizeKey) {
  auto c = Parse({"-m", "size=2G"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ram_size, 2ull << 30);
}

TEST(CommandLineTest, UnknownFlagIsNamed) {
  auto c = Parse({"-enable-kvm"});
  EXPECT_THAT(c.status().message(), HasSubstr("-enable-kvm"));
}

TEST(CommandLineTest, MissingValueIsAnError) {
  EXPECT_THAT(Parse({"-device"}).status().message(),
              HasSubstr("requires an argument"));
  EXPECT_THAT(Parse({"-display"}).status().message(),
              HasSubstr("requires an argument"));
}

TEST(CommandLineTest, DeviceWithoutDriverIsAnError) {
  EXPECT_THAT(Parse({"-device", "addr=04.0"}).status().message(),
              HasSubstr("'driver' is missing"));
}

TEST(CommandLineTest, OtherMachinesAndBadPropertiesAreRefused) {
  EXPECT_FALSE(Parse({"-M", "pc"}).ok());
  EXPECT_FALSE(Parse({"-M", "q35,vfio-host=magic"}).ok());
  EXPECT_FALSE(Parse({"-M", "q35,frobnicate=on"}).ok());
  EXPECT_FALSE(Parse({"-m", "0"}).ok());
}

TEST(CommandLineTest, ChardevAndMonitorAreKept) {
  auto c = Parse({"-chardev", "socket,path=/tmp/q.sock,id=mon0", "-mon",
                  "chardev=mon0,mode=control", "-qmp",
                  "unix:/tmp/x,server=on,wait=off"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->chardevs[0].head, "socket");
  EXPECT_EQ(*c->monitors[0].Get("chardev"), "mon0");
  EXPECT_EQ(*c->monitors[0].Get("mode"), "control");
  EXPECT_EQ(c->qmp[0], "unix:/tmp/x,server=on,wait=off");
}

}  // namespace
}  // namespace viommu::system
