// Differential conformance: plays each scenario in scenarios/ against
// Debian's qemu-system-x86_64 (QEMU 7.2, run as ARCHITECTURE.md §7 says)
// and against build/viommu with the same arguments, and requires every
// answer to be identical.
//
// Scenario files: one qtest command per line; `#` comments; directives:
//   args: ...      extra machine arguments for both (space separated)
//   wait-dma       let an edu DMA complete: QEMU sleeps 300 ms of real time
//                  (its virtual clock follows real time there), viommu steps
//                  its clock by 100 ms; no answer is compared
// Asynchronous `IRQ raise/lower N` lines (after irq_intercept_in ioapic) are
// compared too, except those of GSIs 0, 2 and 8: QEMU's PIT and RTC tick
// in real time on its halted machine, and viommu models neither.
// Environment: VIOMMU_BINARY (required), SCENARIO_DIR (required),
// QEMU_BINARY (default /usr/bin/qemu-system-x86_64), CI; VTD_PROPERTY_CASES
// (optional): a file of command lines that must start or fail alike
// (VtdPropertyCasesTest below, vtd_property_cases.txt).
//
// Without QEMU the suite cannot compare anything: main() exits 77 (Meson's
// SKIP) saying what to install, or 1 (a failure) when CI=true (or CI=1), so
// CI cannot pass a conformance run that compared nothing.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/qtest/qtest_client.h"

namespace viommu::qtest {
namespace {

namespace fs = std::filesystem;

std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

struct Scenario {
  std::vector<std::string> args;
  struct Step {
    int line_no;
    std::string text;
  };
  std::vector<Step> steps;
};

Scenario Load(const fs::path& path) {
  Scenario s;
  std::ifstream in(path);
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t.empty() || absl::StartsWith(t, "#")) continue;
    if (absl::ConsumePrefix(&t, "args:")) {
      for (absl::string_view a :
           absl::StrSplit(t, ' ', absl::SkipWhitespace())) {
        s.args.emplace_back(a);
      }
      continue;
    }
    s.steps.push_back({no, std::string(t)});
  }
  return s;
}

// HLT.BIN: 64 KiB of HLT so QEMU's vCPU halts at reset (§7).
std::string HaltBios() {
  static const std::string path = [] {
    std::string p = (fs::temp_directory_path() /
                     ("viommu-hlt-" + std::to_string(getpid()) + ".bin"))
                        .string();
    std::ofstream(p, std::ios::binary) << std::string(65536, '\xf4');
    return p;
  }();
  return path;
}

std::vector<std::string> MachineArgs(const std::string& binary,
                                     const Scenario& s) {
  std::vector<std::string> argv = {
      binary,   "-machine",    "q35",        "-accel",    "tcg",
      "-qtest", "stdio",       "-qtest-log", "/dev/null", "-display",
      "none",   "-nodefaults", "-bios",      HaltBios()};
  argv.insert(argv.end(), s.args.begin(), s.args.end());
  return argv;
}

// The IRQ lines received since *seen, without the timer GSIs (see top).
std::vector<std::string> DeviceIrqs(const std::vector<std::string>& all,
                                    size_t* seen) {
  std::vector<std::string> out;
  for (; *seen < all.size(); ++(*seen)) {
    const std::string& l = all[*seen];
    if (absl::EndsWith(l, " 0") || absl::EndsWith(l, " 2") ||
        absl::EndsWith(l, " 8")) {
      continue;
    }
    out.push_back(l);
  }
  return out;
}

std::string QemuBinary() {
  return Env("QEMU_BINARY", "/usr/bin/qemu-system-x86_64");
}

class ConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ConformanceTest, AnswersMatchQemu) {
  const std::string qemu = QemuBinary();  // main() checked it exists
  Scenario s = Load(fs::path(Env("SCENARIO_DIR")) / GetParam());
  ASSERT_FALSE(s.steps.empty()) << "empty scenario";
  auto ref = QtestClient::Spawn(MachineArgs(qemu, s));
  auto dut = QtestClient::Spawn(MachineArgs(Env("VIOMMU_BINARY"), s));
  ASSERT_TRUE(ref.ok()) << ref.status();
  ASSERT_TRUE(dut.ok()) << dut.status();
  size_t ref_irqs = 0, dut_irqs = 0;
  for (const Scenario::Step& step : s.steps) {
    if (step.text == "wait-dma") {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ASSERT_TRUE((*dut)->Command("clock_step 100000000").ok());
      continue;
    }
    absl::StatusOr<std::string> want = (*ref)->Command(step.text);
    absl::StatusOr<std::string> got = (*dut)->Command(step.text);
    ASSERT_TRUE(want.ok()) << GetParam() << ":" << step.line_no
                           << ": QEMU: " << want.status();
    ASSERT_TRUE(got.ok()) << GetParam() << ":" << step.line_no
                          << ": viommu: " << got.status();
    EXPECT_EQ(*got, *want) << GetParam() << ":" << step.line_no << ": "
                           << step.text;
    EXPECT_EQ(DeviceIrqs((*dut)->irq_events(), &dut_irqs),
              DeviceIrqs((*ref)->irq_events(), &ref_irqs))
        << GetParam() << ":" << step.line_no << ": IRQ lines after "
        << step.text;
  }
}

std::vector<std::string> ScenarioNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(Env("SCENARIO_DIR"), ec)) {
    if (e.path().extension() == ".qtest") {
      names.push_back(e.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, ConformanceTest, ::testing::ValuesIn(ScenarioNames()),
    [](const ::testing::TestParamInfo<std::string>& param_info) {
      std::string n = param_info.param.substr(0, param_info.param.rfind('.'));
      for (char& c : n) {
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return n;
    });

// ---- Command lines that start or fail (VTD_PROPERTY_CASES) -------------
//
// Each line of the case file is a machine's extra arguments (as `args:`).
// Both binaries are started with them and asked for VER, CAP and ECAP:
// either both answer the same, or both exit with the same message (the
// text after "BINARY: -device ...: " on stderr). A line ending in
// "=> viommu refuses NAME" is a combination QEMU 7.2 starts and viommu
// refuses on purpose: QEMU must start and viommu's message must name NAME.

struct StartResult {
  bool started = false;
  std::string answers;  // the three answers, when started
  std::string error;    // the message, when it exited
};

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The message of the last stderr line naming an option: the text after
// the first ": " that follows "-device " (or the whole line).
std::string StartupError(const std::string& err) {
  std::string msg;
  for (absl::string_view line : absl::StrSplit(err, '\n')) {
    const size_t dev = line.find("-device ");
    if (dev == absl::string_view::npos) continue;
    const size_t sep = line.find(": ", dev);
    msg = std::string(sep == absl::string_view::npos ? line
                                                     : line.substr(sep + 2));
  }
  return msg;
}

StartResult StartOnce(const std::vector<std::string>& argv) {
  StartResult r;
  const std::string base =
      (fs::temp_directory_path() / ("viommu-props-" + std::to_string(getpid())))
          .string();
  const std::string out_path = base + ".out", err_path = base + ".err";
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  int in[2];
  if (pipe(in) != 0) return r;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    close(in[0]);
    close(in[1]);
    const int o = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  const std::string cmds =
      "readl 0xfed90000\nreadq 0xfed90008\nreadq 0xfed90010\n";
  (void)!write(in[1], cmds.data(), cmds.size());
  bool exited = false;
  for (int i = 0; i < 1000; ++i) {  // at most 10 s
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    const std::string out = ReadFileText(out_path);
    if (std::count(out.begin(), out.end(), '\n') >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close(in[1]);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  r.answers = ReadFileText(out_path);
  r.started = std::count(r.answers.begin(), r.answers.end(), '\n') >= 3;
  if (!r.started) r.error = StartupError(ReadFileText(err_path));
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return r;
}

TEST(VtdPropertyCasesTest, StartOrFailAsQemu) {
  const std::string path = Env("VTD_PROPERTY_CASES");
  if (path.empty()) GTEST_SKIP() << "VTD_PROPERTY_CASES not set";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::string line;
  int cases = 0;
  for (int no = 1; std::getline(in, line); ++no) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t.empty() || absl::StartsWith(t, "#")) continue;
    std::string refused;  // viommu refuses on purpose, naming this
    if (size_t at = t.find("=> viommu refuses "); at != t.npos) {
      refused = std::string(absl::StripAsciiWhitespace(
          t.substr(at + strlen("=> viommu refuses "))));
      t = absl::StripAsciiWhitespace(t.substr(0, at));
    }
    Scenario s;
    for (absl::string_view a : absl::StrSplit(t, ' ', absl::SkipWhitespace())) {
      s.args.emplace_back(a);
    }
    SCOPED_TRACE(absl::StrCat(path, ":", no, ": ", t));
    ++cases;
    const StartResult want = StartOnce(MachineArgs(QemuBinary(), s));
    const StartResult got = StartOnce(MachineArgs(Env("VIOMMU_BINARY"), s));
    if (!refused.empty()) {
      EXPECT_TRUE(want.started) << "QEMU: " << want.error;
      EXPECT_FALSE(got.started);
      EXPECT_THAT(got.error, ::testing::HasSubstr(refused));
      EXPECT_THAT(got.error, ::testing::HasSubstr("viommu does not model"));
      continue;
    }
    EXPECT_EQ(got.started, want.started)
        << "QEMU: " << (want.started ? want.answers : want.error)
        << "\nviommu: " << (got.started ? got.answers : got.error);
    if (want.started && got.started) {
      EXPECT_EQ(got.answers, want.answers);
    } else if (!want.started && !got.started) {
      EXPECT_FALSE(want.error.empty());
      EXPECT_EQ(got.error, want.error);
    }
  }
  EXPECT_GT(cases, 0);
}

}  // namespace

// The peer check, before any test runs (see the top of the file).
int CheckQemuPeer() {
  const std::string qemu = QemuBinary();
  if (access(qemu.c_str(), X_OK) == 0) return 0;
  const std::string what =
      qemu + " is not installed (QEMU 7.2, the conformance peer); install " +
      "the Debian package qemu-system-x86: scripts/setup-deps.sh, or sudo " +
      "apt-get install qemu-system-x86 (QEMU_BINARY=PATH points elsewhere)";
  const std::string ci = Env("CI");
  if (ci == "true" || ci == "TRUE" || ci == "True" || ci == "1") {
    std::fprintf(stderr,
                 "FAIL: conformance suite: %s (CI=true: a missing peer is a "
                 "failure, not a skip)\n",
                 what.c_str());
    return 1;
  }
  std::fprintf(stderr, "SKIP: conformance suite: %s\n", what.c_str());
  return 77;
}

}  // namespace viommu::qtest

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (int rc = viommu::qtest::CheckQemuPeer(); rc != 0) return rc;
  return RUN_ALL_TESTS();
}
