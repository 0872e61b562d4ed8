#include "tests/qtest/qtest_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace viommu::qtest {

absl::StatusOr<std::unique_ptr<QtestClient>> QtestClient::Spawn(
    std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  // A machine that exits must turn writes into errors, not kill the test.
  signal(SIGPIPE, SIG_IGN);
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe");
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close(in_pipe[0]);
    close(in_pipe[1]);
    return absl::ErrnoToStatus(e, "pipe");
  }
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // QEMU does not exit when its qtest stdin closes: if the test dies
    // (a timeout kill), the machine must die with it, not linger.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  std::unique_ptr<QtestClient> c(new QtestClient());
  c->pid_ = pid;
  c->to_child_ = in_pipe[1];
  c->from_child_ = out_pipe[0];
  c->timeout_ = timeout;
  return c;
}

QtestClient::~QtestClient() {
  if (to_child_ >= 0) close(to_child_);
  if (pid_ > 0) {
    int status = 0;
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(10'000);
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  if (from_child_ >= 0) close(from_child_);
}

absl::StatusOr<std::string> QtestClient::ReadLine() {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError("no answer from the machine");
    }
    pollfd pfd{from_child_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return absl::DeadlineExceededError("no answer from the machine");
    char buf[4096];
    ssize_t n = read(from_child_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("the machine closed the channel");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

absl::Status QtestClient::WriteAll(absl::string_view out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = write(to_child_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::ErrnoToStatus(errno, "write to the machine");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status QtestClient::SendBatch(absl::string_view lines, int answers) {
  absl::Status s = WriteAll(lines);
  if (!s.ok()) return s;
  for (int i = 0; i < answers;) {
    absl::StatusOr<std::string> a = ReadLine();
    if (!a.ok()) return a.status();
    if (absl::StartsWith(*a, "IRQ ")) {
      irq_events_.push_back(*std::move(a));
    } else {
      ++i;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> QtestClient::Command(absl::string_view line) {
  absl::Status s = WriteAll(absl::StrCat(line, "\n"));
  if (!s.ok()) return s;
  for (;;) {
    absl::StatusOr<std::string> answer = ReadLine();
    if (!answer.ok()) return answer;
    if (absl::StartsWith(*answer, "IRQ ")) {
      irq_events_.push_back(*std::move(answer));
      continue;
    }
    return answer;
  }
}

uint64_t QtestClient::ValueOf(absl::string_view cmd) {
  absl::StatusOr<std::string> a = Command(cmd);
  uint64_t v = 0;
  if (!a.ok()) {
    last_error_ = absl::StrCat(cmd, ": ", a.status().ToString());
    return ~uint64_t{0};
  }
  absl::string_view s = *a;
  if (!absl::ConsumePrefix(&s, "OK ") || !absl::SimpleHexAtoi(s, &v)) {
    last_error_ = absl::StrCat(cmd, ": unexpected answer '", *a, "'");
    return ~uint64_t{0};
  }
  return v;
}

void QtestClient::ExpectOk(absl::string_view cmd) {
  absl::StatusOr<std::string> a = Command(cmd);
  if (!a.ok()) {
    last_error_ = absl::StrCat(cmd, ": ", a.status().ToString());
  } else if (!absl::StartsWith(*a, "OK")) {
    last_error_ = absl::StrCat(cmd, ": unexpected answer '", *a, "'");
  }
}

uint8_t QtestClient::Inb(uint16_t p) {
  return static_cast<uint8_t>(ValueOf(absl::StrFormat("inb 0x%x", p)));
}
uint16_t QtestClient::Inw(uint16_t p) {
  return static_cast<uint16_t>(ValueOf(absl::StrFormat("inw 0x%x", p)));
}
uint32_t QtestClient::Inl(uint16_t p) {
  return static_cast<uint32_t>(ValueOf(absl::StrFormat("inl 0x%x", p)));
}
void QtestClient::Outb(uint16_t p, uint8_t v) {
  ExpectOk(absl::StrFormat("outb 0x%x 0x%x", p, v));
}
void QtestClient::Outw(uint16_t p, uint16_t v) {
  ExpectOk(absl::StrFormat("outw 0x%x 0x%x", p, v));
}
void QtestClient::Outl(uint16_t p, uint32_t v) {
  ExpectOk(absl::StrFormat("outl 0x%x 0x%x", p, v));
}
uint8_t QtestClient::Readb(uint64_t a) {
  return static_cast<uint8_t>(ValueOf(absl::StrFormat("readb 0x%x", a)));
}
uint16_t QtestClient::Readw(uint64_t a) {
  return static_cast<uint16_t>(ValueOf(absl::StrFormat("readw 0x%x", a)));
}
uint32_t QtestClient::Readl(uint64_t a) {
  return static_cast<uint32_t>(ValueOf(absl::StrFormat("readl 0x%x", a)));
}
uint64_t QtestClient::Readq(uint64_t a) {
  return ValueOf(absl::StrFormat("readq 0x%x", a));
}
void QtestClient::Writeb(uint64_t a, uint8_t v) {
  ExpectOk(absl::StrFormat("writeb 0x%x 0x%x", a, v));
}
void QtestClient::Writew(uint64_t a, uint16_t v) {
  ExpectOk(absl::StrFormat("writew 0x%x 0x%x", a, v));
}
void QtestClient::Writel(uint64_t a, uint32_t v) {
  ExpectOk(absl::StrFormat("writel 0x%x 0x%x", a, v));
}
void QtestClient::Writeq(uint64_t a, uint64_t v) {
  ExpectOk(absl::StrFormat("writeq 0x%x 0x%x", a, v));
}

std::vector<uint8_t> QtestClient::Memread(uint64_t addr, size_t len) {
  absl::StatusOr<std::string> a =
      Command(absl::StrFormat("read 0x%x 0x%x", addr, len));
  absl::string_view s = a.ok() ? absl::string_view(*a) : "";
  if (!absl::ConsumePrefix(&s, "OK 0x") || s.size() != 2 * len) {
    last_error_ =
        absl::StrCat("read: unexpected answer '", a.ok() ? *a : "", "'");
    return {};
  }
  std::string bytes = absl::HexStringToBytes(s);
  return {bytes.begin(), bytes.end()};
}

void QtestClient::Memwrite(uint64_t addr, const std::vector<uint8_t>& data) {
  std::string hex = absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(data.data()), data.size()));
  ExpectOk(absl::StrFormat("write 0x%x 0x%x 0x%s", addr, data.size(), hex));
}

void QtestClient::Memset(uint64_t addr, size_t len, uint8_t v) {
  ExpectOk(absl::StrFormat("memset 0x%x 0x%x 0x%x", addr, len, v));
}

int64_t QtestClient::ClockStep(int64_t ns) {
  absl::StatusOr<std::string> a = Command(absl::StrFormat("clock_step %d", ns));
  int64_t now = -1;
  absl::string_view s = a.ok() ? absl::string_view(*a) : "";
  if (!absl::ConsumePrefix(&s, "OK ") || !absl::SimpleAtoi(s, &now)) {
    last_error_ = absl::StrCat("clock_step: unexpected answer '",
                               a.ok() ? *a : a.status().ToString(), "'");
  }
  return now;
}

}  // namespace viommu::qtest
