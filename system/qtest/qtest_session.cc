#include "viommu/system/qtest/qtest_session.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace viommu::system {
namespace {

constexpr size_t kChunk = 64 * 1024;

}  // namespace

QtestSession::QtestSession(QtestTarget* target, EmitFn emit)
    : target_(target), emit_(std::move(emit)) {}

const std::string& QtestSession::HandleLine(absl::string_view line) {
  answer_.clear();
  absl::StatusOr<QtestCommand> c = ParseQtestLine(line);
  if (!c.ok()) {
    answer_ = QtestErrorReply(c.status());
  } else if (c->op == QtestOp::kNone) {
    return answer_;
  } else {
    Execute(*c);
  }
  answer_ += '\n';
  emit_(answer_);
  answer_.pop_back();
  return answer_;
}

void QtestSession::Execute(const QtestCommand& c) {
  switch (c.op) {
    case QtestOp::kNone:
      return;
    case QtestOp::kOut:
      target_->PortOut(static_cast<uint16_t>(c.addr),
                       static_cast<uint32_t>(c.value), c.size);
      answer_ = "OK";
      return;
    case QtestOp::kIn:
      answer_ = absl::StrFormat(
          "OK 0x%04x", target_->PortIn(static_cast<uint16_t>(c.addr), c.size));
      return;
    case QtestOp::kWrite: {
      uint64_t v = c.value;  // little-endian target: no swap
      target_->MemWrite(c.addr, &v, c.size);
      answer_ = "OK";
      return;
    }
    case QtestOp::kRead: {
      uint64_t v = 0;
      target_->MemRead(c.addr, &v, c.size);
      answer_ = absl::StrFormat("OK 0x%016x", v);
      return;
    }
    case QtestOp::kBufRead:
      ReadBuffer(c.addr, c.value, /*base64=*/false);
      return;
    case QtestOp::kB64Read:
      ReadBuffer(c.addr, c.value, /*base64=*/true);
      return;
    case QtestOp::kBufWrite:
      Fill(c.addr, c.value, c.data, 0);
      answer_ = "OK";
      return;
    case QtestOp::kB64Write:
      // QEMU writes min(SIZE, decoded length) after logging a mismatch.
      Fill(c.addr, std::min<uint64_t>(c.value, c.data.size()), c.data, 0);
      answer_ = "OK";
      return;
    case QtestOp::kMemset:
      Fill(c.addr, c.value, "", c.data[0]);
      answer_ = "OK";
      return;
    case QtestOp::kEndianness:
      answer_ = "OK little";
      return;
    case QtestOp::kClockStep: {
      std::optional<int64_t> now;
      if (c.has_value) {
        now = target_->ClockStep(static_cast<int64_t>(c.value));
      } else {
        now = target_->ClockStepNext();
      }
      answer_ = now ? absl::StrCat("OK ", *now)
                    : "FAIL cannot advance clock to the next deadline "
                      "because there is no pending deadline";
      return;
    }
    case QtestOp::kClockSet:
      answer_ =
          absl::StrCat("OK ", target_->ClockSet(static_cast<int64_t>(c.value)));
      return;
    case QtestOp::kIrqInterceptIn: {
      if (irq_in_intercepted_ || irq_out_intercepted_) {
        answer_ = "FAIL IRQ intercept already enabled";
        return;
      }
      absl::Status s = target_->InterceptIrqIn(c.path, [this](int n, bool l) {
        emit_(absl::StrCat("IRQ ", l ? "raise " : "lower ", n, "\n"));
      });
      if (!s.ok()) {
        answer_ = "FAIL Unknown device";
        return;
      }
      irq_in_intercepted_ = true;
      answer_ = "OK";
      return;
    }
    case QtestOp::kIrqInterceptOut:
      if (!target_->InterceptIrqOut(c.path).ok()) {
        answer_ = "FAIL Unknown device";
      } else if (irq_in_intercepted_ || irq_out_intercepted_) {
        answer_ = "FAIL IRQ intercept already enabled";
      } else {
        irq_out_intercepted_ = true;
        answer_ = "OK";
      }
      return;
    case QtestOp::kSetIrqIn: {
      absl::Status s = target_->SetIrqIn(c.path, c.name, c.value, c.level);
      answer_ = s.ok() ? "OK" : absl::StrCat("FAIL ", s.message());
      return;
    }
  }
}

void QtestSession::ReadBuffer(uint64_t addr, uint64_t len, bool base64) {
  std::string bytes(len, '\0');
  for (uint64_t done = 0; done < len; done += kChunk) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(kChunk, len - done));
    target_->MemRead(addr + done, bytes.data() + done, n);
  }
  answer_ = base64 ? absl::StrCat("OK ", absl::Base64Escape(bytes))
                   : absl::StrCat("OK 0x", absl::BytesToHexString(bytes));
}

// Writes `head`, then `fill` bytes up to `len` in total, in chunks.
void QtestSession::Fill(uint64_t addr, uint64_t len, const std::string& head,
                        char fill) {
  const uint64_t from_head = std::min<uint64_t>(head.size(), len);
  if (from_head > 0) target_->MemWrite(addr, head.data(), from_head);
  if (from_head == len) return;
  const std::vector<char> pattern(kChunk, fill);
  for (uint64_t done = from_head; done < len; done += kChunk) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(kChunk, len - done));
    target_->MemWrite(addr + done, pattern.data(), n);
  }
}

}  // namespace viommu::system
