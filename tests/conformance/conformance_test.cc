// Differential conformance: plays each scenario in scenarios/ in lock step
// against two QEMU peers, Debian's qemu-system-x86_64 (QEMU 7.2, run as
// ARCHITECTURE.md §7 says) and QEMU 10.0.2 (unpacked by
// scripts/setup-qemu-peer.sh), and against build/viommu with the same
// arguments, and requires every answer to be identical
// (docs/conformance-peers.md).
//
// Scenario files: one qtest command per line; `#` comments; directives:
//   args: ...      extra machine arguments for all (space separated)
//   wait-dma       let an edu DMA complete: QEMU sleeps 300 ms of real time
//                  (its virtual clock follows real time there), viommu steps
//                  its clock by 100 ms; no answer is compared
//   peers: 10.0    (anywhere) play the scenario against these peers only,
//                  e.g. where QEMU 7.2 aborts; the comments say why
// Where the peers answer a command differently, the lines after it record
// both answers and the one viommu gives (the comments say why):
//   qemu-7.2: ANSWER
//   qemu-10.0: ANSWER
//   viommu: 7.2 | 10.0 | ANSWER
// Each peer must give its recorded answer and viommu the one it follows
// (or its own ANSWER, where it follows the specification and neither
// peer), byte for byte; the recorded answer is checked even when that peer
// is not there. IRQ lines after such a command are compared with the
// followed peer's only (with no peer's when viommu gives its own).
// Asynchronous `IRQ raise/lower N` lines (after irq_intercept_in ioapic) are
// compared too, except those of GSIs 0, 2 and 8: QEMU's PIT and RTC tick
// in real time on its halted machine, and viommu models neither.
// Environment: VIOMMU_BINARY (required), SCENARIO_DIR (required),
// QEMU_BINARY (QEMU 7.2, default /usr/bin/qemu-system-x86_64),
// QEMU10_BINARY (default: the wrapper setup-qemu-peer.sh writes,
// ${VIOMMU_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/viommu}/qemu-10.0.2/
// bin/qemu-system-x86_64), CI, CONFORMANCE_REQUIRE (a peer, "10.0": exit
// 77 or 1 as below when it is missing); VTD_PROPERTY_CASES (optional): a
// file of command lines that must start or fail alike
// (VtdPropertyCasesTest below, vtd_property_cases.txt), and
// VTD_PROPERTY_CASES_QEMU10 (optional): QEMU 10.0's recorded answers to
// them (vtd_property_cases_qemu10.txt).
//
// Without QEMU 7.2 the suite cannot compare anything: main() exits 77
// (Meson's SKIP) saying what to install, or 1 (a failure) when CI=true (or
// CI=1), so CI cannot pass a conformance run that compared nothing.
// Without QEMU 10.0 (no network for the fetch) the scenarios run against
// 7.2 alone and say so on stderr; under CI=true that is a failure too.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
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

// The peers, in the order their answers are recorded.
constexpr int kPeers = 2;
constexpr const char* kPeerNames[kPeers] = {"7.2", "10.0"};

struct Scenario {
  std::vector<std::string> args;
  bool peer_on[kPeers] = {true, true};  // `peers:`
  struct Step {
    int line_no;
    std::string text;
    // Set by qemu-7.2:/qemu-10.0:/viommu: after the command.
    bool differs = false;
    std::string recorded[kPeers];
    bool has_recorded[kPeers] = {false, false};
    int follows = -1;  // the peer whose answer viommu gives
    std::string own;   // or viommu's own answer (follows < 0)
  };
  std::vector<Step> steps;
  std::string error;  // a malformed directive
};

int PeerIndex(absl::string_view name) {
  for (int p = 0; p < kPeers; ++p) {
    if (name == kPeerNames[p]) return p;
  }
  return -1;
}

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
    if (absl::ConsumePrefix(&t, "peers:")) {
      for (bool& on : s.peer_on) on = false;
      for (absl::string_view a :
           absl::StrSplit(t, ' ', absl::SkipWhitespace())) {
        const int p = PeerIndex(a);
        if (p < 0) {
          s.error = absl::StrCat(no, ": unknown peer '", a, "'");
          return s;
        }
        s.peer_on[p] = true;
      }
      continue;
    }
    int recorded_peer = -1;
    for (int p = 0; p < kPeers; ++p) {
      if (absl::ConsumePrefix(&t, absl::StrCat("qemu-", kPeerNames[p], ":"))) {
        recorded_peer = p;
        break;
      }
    }
    const bool follows = absl::ConsumePrefix(&t, "viommu:");
    if (recorded_peer >= 0 || follows) {
      if (s.steps.empty() || s.steps.back().text == "wait-dma") {
        s.error = absl::StrCat(no, ": no command before this directive");
        return s;
      }
      Scenario::Step& step = s.steps.back();
      step.differs = true;
      t = absl::StripAsciiWhitespace(t);
      if (recorded_peer >= 0) {
        step.recorded[recorded_peer] = std::string(t);
        step.has_recorded[recorded_peer] = true;
      } else {
        step.follows = PeerIndex(t);
        if (step.follows < 0) step.own = std::string(t);
      }
      continue;
    }
    s.steps.push_back({no, std::string(t)});
  }
  for (const Scenario::Step& step : s.steps) {
    if (!step.differs) continue;
    for (int p = 0; p < kPeers; ++p) {
      if (s.peer_on[p] && !step.has_recorded[p]) {
        s.error = absl::StrCat(step.line_no, ": no qemu-", kPeerNames[p],
                               ": answer recorded");
      }
    }
    if (step.follows < 0 ? step.own.empty()
                         : !step.has_recorded[step.follows]) {
      s.error = absl::StrCat(step.line_no,
                             ": viommu: must name a recorded peer or give "
                             "an answer");
    }
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

// QEMU 10.0: QEMU10_BINARY, else where scripts/setup-qemu-peer.sh puts it.
std::string Qemu10Binary() {
  std::string bin = Env("QEMU10_BINARY");
  if (!bin.empty()) return bin;
  std::string cache = Env("VIOMMU_CACHE_DIR");
  if (cache.empty()) {
    const std::string xdg = Env("XDG_CACHE_HOME");
    cache =
        !xdg.empty() ? xdg + "/viommu" : Env("HOME", "/") + "/.cache/viommu";
  }
  return cache + "/qemu-10.0.2/bin/qemu-system-x86_64";
}

std::string PeerBinary(int peer) {
  return peer == 0 ? QemuBinary() : Qemu10Binary();
}

bool PeerPresent(int peer) {
  return access(PeerBinary(peer).c_str(), X_OK) == 0;
}

class ConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ConformanceTest, AnswersMatchQemu) {
  Scenario s = Load(fs::path(Env("SCENARIO_DIR")) / GetParam());
  ASSERT_TRUE(s.error.empty()) << GetParam() << ":" << s.error;
  ASSERT_FALSE(s.steps.empty()) << "empty scenario";
  // The peers that play: named by the scenario and present (main()
  // checked 7.2, and reported a missing 10.0).
  std::unique_ptr<QtestClient> ref[kPeers];
  // QEMU does not exit when its qtest channel closes, so ~QtestClient would
  // wait 500 ms for each before killing it: kill them first (on every
  // return; declared after ref, so it runs before their destructors).
  struct KillPeers {
    std::unique_ptr<QtestClient>* peers;
    ~KillPeers() {
      for (int p = 0; p < kPeers; ++p) {
        if (peers[p] != nullptr) kill(peers[p]->pid(), SIGKILL);
      }
    }
  } kill_peers{ref};
  int playing = 0;
  for (int p = 0; p < kPeers; ++p) {
    if (!s.peer_on[p] || !PeerPresent(p)) continue;
    auto c = QtestClient::Spawn(MachineArgs(PeerBinary(p), s));
    ASSERT_TRUE(c.ok()) << "QEMU " << kPeerNames[p] << ": " << c.status();
    ref[p] = *std::move(c);
    ++playing;
  }
  if (playing == 0) {
    GTEST_SKIP() << GetParam() << " plays only against QEMU 10.0, which is "
                 << "not here (scripts/setup-qemu-peer.sh)";
  }
  auto dut = QtestClient::Spawn(MachineArgs(Env("VIOMMU_BINARY"), s));
  ASSERT_TRUE(dut.ok()) << dut.status();
  size_t ref_irqs[kPeers] = {0, 0}, dut_irqs = 0;
  for (const Scenario::Step& step : s.steps) {
    const std::string where = absl::StrCat(GetParam(), ":", step.line_no);
    if (step.text == "wait-dma") {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ASSERT_TRUE((*dut)->Command("clock_step 100000000").ok());
      continue;
    }
    absl::StatusOr<std::string> got = (*dut)->Command(step.text);
    ASSERT_TRUE(got.ok()) << where << ": viommu: " << got.status();
    const std::vector<std::string> dut_new =
        DeviceIrqs((*dut)->irq_events(), &dut_irqs);
    if (step.differs && step.follows >= 0) {
      EXPECT_EQ(*got, step.recorded[step.follows])
          << where << ": " << step.text << " (viommu follows QEMU "
          << kPeerNames[step.follows] << ")";
    } else if (step.differs) {
      EXPECT_EQ(*got, step.own)
          << where << ": " << step.text << " (viommu's own recorded answer)";
    }
    for (int p = 0; p < kPeers; ++p) {
      if (ref[p] == nullptr) continue;
      absl::StatusOr<std::string> want = ref[p]->Command(step.text);
      ASSERT_TRUE(want.ok())
          << where << ": QEMU " << kPeerNames[p] << ": " << want.status();
      if (step.differs) {
        EXPECT_EQ(*want, step.recorded[p])
            << where << ": " << step.text << ": QEMU " << kPeerNames[p]
            << " no longer gives its recorded answer";
      } else {
        EXPECT_EQ(*got, *want)
            << where << ": " << step.text << " (QEMU " << kPeerNames[p] << ")";
      }
      const std::vector<std::string> ref_new =
          DeviceIrqs(ref[p]->irq_events(), &ref_irqs[p]);
      if (!step.differs || step.follows == p) {
        EXPECT_EQ(dut_new, ref_new)
            << where << ": IRQ lines after " << step.text << " (QEMU "
            << kPeerNames[p] << ")";
      }
    }
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

// The peers are the versions the recorded answers are for.
TEST(QemuPeersTest, PeersReportTheirVersions) {
  const char* const want[kPeers] = {"QEMU emulator version 7.2.",
                                    "QEMU emulator version 10.0.2 "};
  for (int p = 0; p < kPeers; ++p) {
    if (!PeerPresent(p)) continue;  // main() said so
    FILE* f = popen((PeerBinary(p) + " --version").c_str(), "r");
    ASSERT_NE(f, nullptr);
    char buf[256] = {};
    const bool read = std::fgets(buf, sizeof(buf), f) != nullptr;
    pclose(f);
    ASSERT_TRUE(read) << PeerBinary(p);
    EXPECT_THAT(std::string(buf), ::testing::StartsWith(want[p]))
        << PeerBinary(p);
  }
}

// ---- Command lines that start or fail (VTD_PROPERTY_CASES) -------------
//
// Each line of the case file is a machine's extra arguments (as `args:`).
// Both binaries are started with them and asked for VER, CAP and ECAP:
// either both answer the same, or both exit with the same message (the
// text after "BINARY: -device ...: " on stderr). A line ending in
// "=> viommu refuses NAME" is a combination QEMU 7.2 starts and viommu
// refuses on purpose: QEMU must start and viommu's message must name NAME.
// QEMU 10.0 (when present) must give, for every line, the answer recorded
// in VTD_PROPERTY_CASES_QEMU10: one line per case, "ARGS => 10.0 starts
// VER CAP ECAP" or "ARGS => 10.0 fails MESSAGE". With
// VTD_PROPERTY_CASES_QEMU10_RECORD=PATH the test writes 10.0's answers
// there instead (to regenerate the file after a deliberate change).

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

// A started binary: its stdin pipe and the files its output goes to.
struct Starting {
  pid_t pid = -1;
  int in = -1;
  std::string out_path, err_path;
};

// Forks argv with the three register reads on stdin; `tag` keeps the output
// files of binaries started side by side apart.
Starting StartBegin(const std::vector<std::string>& argv, int tag) {
  Starting st;
  const std::string base =
      (fs::temp_directory_path() /
       ("viommu-props-" + std::to_string(getpid()) + "-" + std::to_string(tag)))
          .string();
  st.out_path = base + ".out";
  st.err_path = base + ".err";
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  int in[2];
  if (pipe2(in, O_CLOEXEC) != 0) return st;
  const pid_t parent = getpid();
  st.pid = fork();
  if (st.pid == 0) {
    // Never outlive a killed test (QEMU does not exit when stdin closes).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], 0);
    const int o = open(st.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = open(st.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  st.in = in[1];
  const std::string cmds =
      "readl 0xfed90000\nreadq 0xfed90008\nreadq 0xfed90010\n";
  (void)!write(st.in, cmds.data(), cmds.size());
  return st;
}

// Waits until it answered the three reads or exited (at most 10 s).
StartResult StartEnd(Starting& st) {
  StartResult r;
  if (st.pid < 0) return r;
  bool exited = false;
  for (int i = 0; i < 1000; ++i) {  // at most 10 s
    int status;
    if (waitpid(st.pid, &status, WNOHANG) == st.pid) {
      exited = true;
      break;
    }
    const std::string out = ReadFileText(st.out_path);
    if (std::count(out.begin(), out.end(), '\n') >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close(st.in);
  if (!exited) {
    kill(st.pid, SIGKILL);
    waitpid(st.pid, nullptr, 0);
  }
  r.answers = ReadFileText(st.out_path);
  r.started = std::count(r.answers.begin(), r.answers.end(), '\n') >= 3;
  if (!r.started) r.error = StartupError(ReadFileText(st.err_path));
  unlink(st.out_path.c_str());
  unlink(st.err_path.c_str());
  return r;
}

// One line for a start result: "starts VER CAP ECAP" or "fails MESSAGE".
std::string Describe(const StartResult& r) {
  if (!r.started) return "fails " + r.error;
  std::string out = "starts";
  for (absl::string_view a : absl::StrSplit(r.answers, '\n')) {
    if (!a.empty()) absl::StrAppend(&out, " ", a);
  }
  return out;
}

constexpr char kQemu10Mark[] = " => 10.0 ";

TEST(VtdPropertyCasesTest, StartOrFailAsQemu) {
  const std::string path = Env("VTD_PROPERTY_CASES");
  if (path.empty()) GTEST_SKIP() << "VTD_PROPERTY_CASES not set";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  // QEMU 10.0's recorded answers, by case text.
  std::vector<std::pair<std::string, std::string>> recorded10;
  const std::string record_path = Env("VTD_PROPERTY_CASES_QEMU10_RECORD");
  const bool with10 =
      PeerPresent(1) &&
      (!record_path.empty() || !Env("VTD_PROPERTY_CASES_QEMU10").empty());
  if (with10 && record_path.empty()) {
    std::ifstream rin(Env("VTD_PROPERTY_CASES_QEMU10"));
    ASSERT_TRUE(rin) << Env("VTD_PROPERTY_CASES_QEMU10");
    std::string rline;
    while (std::getline(rin, rline)) {
      if (rline.empty() || rline[0] == '#') continue;
      const size_t at = rline.find(kQemu10Mark);
      ASSERT_NE(at, std::string::npos) << rline;
      recorded10.emplace_back(rline.substr(0, at),
                              rline.substr(at + strlen(kQemu10Mark)));
    }
  }
  std::string record_out =
      "# QEMU 10.0.2's answers to vtd_property_cases.txt "
      "(conformance_test.cc,\n"
      "# VtdPropertyCasesTest; docs/conformance-peers.md lists how they "
      "differ\n"
      "# from 7.2's). Regenerate: VTD_PROPERTY_CASES_QEMU10_RECORD=PATH.\n";
  size_t next10 = 0;
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
    // The binaries start side by side (QEMU takes ~0.1 s to start).
    Starting start10;
    if (with10) start10 = StartBegin(MachineArgs(Qemu10Binary(), s), 10);
    Starting start72 = StartBegin(MachineArgs(QemuBinary(), s), 7);
    Starting start_dut = StartBegin(MachineArgs(Env("VIOMMU_BINARY"), s), 0);
    if (with10) {
      const std::string answer10 = Describe(StartEnd(start10));
      absl::StrAppend(&record_out, t, kQemu10Mark, answer10, "\n");
      if (record_path.empty()) {
        if (next10 >= recorded10.size()) {
          ADD_FAILURE() << "no QEMU 10.0 answer recorded";
        } else {
          EXPECT_EQ(recorded10[next10].first, t);
          EXPECT_EQ(answer10, recorded10[next10].second) << "QEMU 10.0";
          ++next10;
        }
      }
    }
    const StartResult want = StartEnd(start72);
    const StartResult got = StartEnd(start_dut);
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
  if (with10 && record_path.empty()) {
    EXPECT_EQ(next10, recorded10.size()) << "recorded QEMU 10.0 answers left";
  }
  if (with10 && !record_path.empty()) {
    std::ofstream(record_path) << record_out;
  }
}

}  // namespace

bool InCi() {
  const std::string ci = Env("CI");
  return ci == "true" || ci == "TRUE" || ci == "True" || ci == "1";
}

// The peer checks, before any test runs (see the top of the file): QEMU
// 7.2 first (nothing can be compared without it), then QEMU 10.0.
int CheckQemuPeer() {
  const std::string qemu = QemuBinary();
  if (access(qemu.c_str(), X_OK) != 0) {
    const std::string what =
        qemu + " is not installed (QEMU 7.2, the conformance peer); install " +
        "the Debian package qemu-system-x86: scripts/setup-deps.sh, or sudo " +
        "apt-get install qemu-system-x86 (QEMU_BINARY=PATH points elsewhere)";
    if (InCi()) {
      std::fprintf(stderr,
                   "FAIL: conformance suite: %s (CI=true: a missing peer is a "
                   "failure, not a skip)\n",
                   what.c_str());
      return 1;
    }
    std::fprintf(stderr, "SKIP: conformance suite: %s\n", what.c_str());
    return 77;
  }
  if (PeerPresent(1)) return 0;
  const std::string what10 =
      Qemu10Binary() + " is missing (QEMU 10.0.2, the second conformance " +
      "peer): scripts/setup-qemu-peer.sh fetches it from Debian's " +
      "bookworm-backports (needs network to deb.debian.org; " +
      "QEMU10_BINARY=PATH points elsewhere)";
  if (InCi()) {
    std::fprintf(stderr,
                 "FAIL: conformance suite: %s (CI=true: a missing peer is a "
                 "failure, not a skip)\n",
                 what10.c_str());
    return 1;
  }
  std::fprintf(stderr, "SKIP: QEMU 10.0 runs: %s\n", what10.c_str());
  return Env("CONFORMANCE_REQUIRE") == "10.0" ? 77 : 0;
}

}  // namespace viommu::qtest

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (int rc = viommu::qtest::CheckQemuPeer(); rc != 0) return rc;
  return RUN_ALL_TESTS();
}
