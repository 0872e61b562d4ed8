// Standalone driver for libFuzzer targets: runs each file given on the
// command line (or every file in a directory) through
// LLVMFuzzerTestOneInput once. Used to replay the regression corpus in
// every build, without clang's libFuzzer.
//
// Targets that keep one machine per process and reset it between inputs
// define the hooks of fuzz_trace.h; for them every input runs once alone
// on a fresh machine and twice more on the reused one, after all the
// other inputs (forward, then backward order), and the replay fails when
// an input's oracle trace differs between the runs.
#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) void ViommuFuzzSetFresh(int fresh);
extern "C" __attribute__((weak)) uint64_t ViommuFuzzTraceHash();

namespace {

std::vector<char> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
}

void Run(const std::vector<char>& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                         bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      std::vector<std::filesystem::path> dir;
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        dir.push_back(e.path());
      }
      std::sort(dir.begin(), dir.end());
      files.insert(files.end(), dir.begin(), dir.end());
    } else {
      files.push_back(p);
    }
  }
  std::vector<std::vector<char>> inputs;
  for (const auto& f : files) inputs.push_back(ReadFile(f));
  const bool traced =
      ViommuFuzzSetFresh != nullptr && ViommuFuzzTraceHash != nullptr;
  if (!traced) {
    for (const auto& in : inputs) Run(in);
    std::printf("replayed %zu inputs\n", inputs.size());
    return inputs.empty() ? 1 : 0;
  }
  // Alone, on a fresh machine each.
  std::vector<uint64_t> fresh;
  for (const auto& in : inputs) {
    ViommuFuzzSetFresh(1);
    Run(in);
    fresh.push_back(ViommuFuzzTraceHash());
  }
  // Reused: every input after all the others (forward, then backward).
  ViommuFuzzSetFresh(0);
  int failures = 0;
  auto check = [&](size_t i) {
    Run(inputs[i]);
    const uint64_t h = ViommuFuzzTraceHash();
    if (h != fresh[i]) {
      std::fprintf(stderr,
                   "replay: %s: trace on the reused machine %016" PRIx64
                   " differs from a fresh machine's %016" PRIx64 "\n",
                   files[i].c_str(), h, fresh[i]);
      ++failures;
    }
  };
  for (size_t i = 0; i < inputs.size(); ++i) check(i);
  for (size_t i = inputs.size(); i-- > 0;) check(i);
  std::printf("replayed %zu inputs, fresh and reused: %d trace mismatches\n",
              inputs.size(), failures);
  return inputs.empty() || failures > 0 ? 1 : 0;
}
