// type1_differential: runs the fixed list of type1 operation sequences
// (type1_sequences.h), or with --sequences=iommufd the iommufd ones
// (iommufd_sequences.h), against one HostBackend and prints one
// deterministic line per operation, so a model run and a real-kernel run can
// be diffed (tests/host/run_real_kernel.sh does; docs/real-kernel-tests.md).
//
//   type1_differential --backend=model --dtb=qemu_q35_guest.dtb
//   type1_differential --backend=linux --group=1 --bdf=0000:00:01.0
//   options: --only=NAME (one sequence), --list,
//            --sequences=type1|iommufd (default type1),
//            --kernel=6.1|6.12|latest (the model's KernelVersion; default
//            6.1)
//
// Exit status: 0 when every sequence ran (whatever the kernel answered),
// 1 for a problem of the program itself (bad options, mmap failures),
// 2 for usage errors.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "tests/host/differential.h"
#include "tests/host/iommufd_sequences.h"
#include "tests/host/type1_sequences.h"
#include "viommu/vfio/host/host_platform_dtb.h"
#include "viommu/vfio/host/model/host_device.h"
#include "viommu/vfio/host/model/model_host.h"
#if VIOMMU_HAVE_LINUX_HOST
#include "viommu/vfio/host/linux/linux_host.h"
#endif

namespace viommu::vfio::difftest {
namespace {

struct Options {
  std::string backend;
  std::string dtb;
  std::string bdf;
  std::string only;
  std::string sequences = "type1";
  std::string kernel = "6.1";
  int group = -1;
  bool list = false;
};

int Usage(const char* why) {
  std::fprintf(stderr,
               "type1_differential: %s\n"
               "usage: type1_differential --backend=model --dtb=FILE "
               "[--bdf=B]\n"
               "       type1_differential --backend=linux --group=N "
               "--bdf=SSSS:BB:DD.F\n"
               "       [--only=SEQUENCE] [--list] [--sequences=type1|iommufd]\n"
               "       [--kernel=6.1|6.12|latest]\n",
               why);
  return 2;
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view flag, std::string* out) {
      if (a.substr(0, flag.size()) != flag) return false;
      *out = std::string(a.substr(flag.size()));
      return true;
    };
    std::string group;
    if (value("--backend=", &o->backend) || value("--dtb=", &o->dtb) ||
        value("--bdf=", &o->bdf) || value("--only=", &o->only) ||
        value("--sequences=", &o->sequences) ||
        value("--kernel=", &o->kernel)) {
      continue;
    }
    if (value("--group=", &group)) {
      if (!absl::SimpleAtoi(group, &o->group) || o->group < 0) return false;
      continue;
    }
    if (a == "--list") {
      o->list = true;
      continue;
    }
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) return Usage("bad option");
  if (o.sequences != "type1" && o.sequences != "iommufd") {
    return Usage("--sequences must be type1 or iommufd");
  }
  if (o.kernel != "6.1" && o.kernel != "6.12" && o.kernel != "latest") {
    return Usage("--kernel must be 6.1, 6.12 or latest");
  }
  const std::vector<Sequence>& sequences =
      o.sequences == "iommufd" ? IommufdSequences() : Type1Sequences();
  if (o.list) {
    for (const Sequence& s : sequences) {
      std::printf("%s\n", s.name.c_str());
    }
    return 0;
  }
  std::unique_ptr<HostBackend> host;
  if (o.backend == "model") {
    if (o.dtb.empty()) return Usage("--backend=model needs --dtb");
    absl::StatusOr<HostPlatform> platform = ReadHostPlatformDtbFile(o.dtb);
    if (!platform.ok()) {
      std::fprintf(stderr, "%s\n", platform.status().ToString().c_str());
      return 1;
    }
    if (platform->devices.empty()) return Usage("the platform has no device");
    if (o.bdf.empty()) o.bdf = platform->devices.front().address.ToString();
    model::ModelHostOptions mo;
    mo.kernel = o.kernel == "latest" ? model::KernelVersion::kLatest
                : o.kernel == "6.12" ? model::KernelVersion::k6_12
                                     : model::KernelVersion::k6_1;
    mo.device_factory = model::ModelHostDevice::Factory({});
    host =
        std::make_unique<model::ModelHost>(*std::move(platform), std::move(mo));
  } else if (o.backend == "linux") {
#if VIOMMU_HAVE_LINUX_HOST
    if (o.bdf.empty()) return Usage("--backend=linux needs --bdf");
    host = std::make_unique<LinuxHost>();
#else
    return Usage("built without the linux backend");
#endif
  } else {
    return Usage("--backend must be model or linux");
  }
  absl::StatusOr<HostPciAddress> bdf = HostPciAddress::Parse(o.bdf);
  if (!bdf.ok()) return Usage("bad --bdf");
  if (o.group < 0) {
    absl::StatusOr<uint32_t> g = host->IommuGroupOf(*bdf);
    if (!g.ok()) {
      std::fprintf(stderr, "group of %s: %s\n", o.bdf.c_str(),
                   g.status().ToString().c_str());
      return 1;
    }
    o.group = static_cast<int>(*g);
  }

  DiffEnv env;
  env.host = host.get();
  env.group_path = "/dev/vfio/" + std::to_string(o.group);
  env.bdf = bdf->ToString();
  env.Info("backend=%s group=%d bdf=%s", host->name(), o.group, env.bdf);
  int ran = 0;
  for (const Sequence& s : sequences) {
    if (!o.only.empty() && s.name != o.only) continue;
    env.Section(s.name);
    s.run(env);
    ++ran;
  }
  if (ran == 0) return Usage("no such sequence");
  env.Emit(absl::StrFormat("== end (%d sequences)", ran));
  return env.failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace viommu::vfio::difftest

int main(int argc, char** argv) {
  return viommu::vfio::difftest::Main(argc, argv);
}
