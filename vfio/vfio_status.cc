#include "viommu/vfio/vfio_status.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace viommu::vfio {
namespace {
constexpr char kErrnoPayload[] = "viommu.dev/errno";
}  // namespace

absl::Status HostCallError(int rc, absl::string_view op,
                           absl::string_view args) {
  const int err = rc < 0 ? -rc : rc;
  absl::Status s(absl::ErrnoToStatusCode(err),
                 absl::StrCat(op, "(", args, "): ", std::strerror(err),
                              " (errno ", err, ")"));
  s.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return s;
}

std::optional<int> StatusErrno(const absl::Status& status) {
  auto p = status.GetPayload(kErrnoPayload);
  if (!p.has_value()) return std::nullopt;
  int err = 0;
  if (!absl::SimpleAtoi(std::string(*p), &err)) return std::nullopt;
  return err;
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  absl::Status s(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    s.SetPayload(url, payload);
  });
  return s;
}

}  // namespace viommu::vfio
