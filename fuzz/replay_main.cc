// main() for running a fuzz target without libFuzzer (any compiler), as the
// replay tests of fuzz/BUILD do under the normal, ASan and TSan builds.
//
// Runs LLVMFuzzerTestOneInput on the seeds of the named target (seeds.h), on
// every prefix of each seed and on each seed with every byte flipped (a small,
// deterministic stand-in for mutation), and then on every file named on the
// command line or found in a directory named there (saved reproducers). A
// failed check aborts, failing the test.
//
// Usage: replay TARGET [FILE_OR_DIR...]     TARGET: wire or codec
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/seeds.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

size_t Run(const std::string& input) {
  // A copy of its own, so that ASan sees a read past the input's end.
  std::vector<uint8_t> bytes(input.begin(), input.end());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 1;
}

size_t RunMutations(const std::string& seed) {
  size_t runs = Run(seed);
  for (size_t n = 0; n < seed.size(); ++n) runs += Run(seed.substr(0, n));
  for (size_t i = 0; i < seed.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string flipped = seed;
      flipped[i] = static_cast<char>(flipped[i] ^ mask);
      runs += Run(flipped);
    }
  }
  return runs;
}

// The regular files named by `path`: itself, or those in the directory.
std::vector<std::string> Files(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return {};
  if (!S_ISDIR(st.st_mode)) return {path};
  std::vector<std::string> files;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* e = readdir(dir)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      for (const std::string& f : Files(path + "/" + name)) files.push_back(f);
    }
    closedir(dir);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s wire|codec [FILE_OR_DIR...]\n", argv[0]);
    return 2;
  }
  const std::vector<std::string> seeds = procpool::fuzz::SeedsFor(argv[1]);
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: unknown target '%s'\n", argv[0], argv[1]);
    return 2;
  }
  size_t runs = 0;
  for (const std::string& seed : seeds) runs += RunMutations(seed);
  size_t files = 0;
  for (int i = 2; i < argc; ++i) {
    const std::vector<std::string> found = Files(argv[i]);
    if (found.empty()) {
      std::printf("%s: nothing in %s (skipped)\n", argv[1], argv[i]);
    }
    for (const std::string& path : found) {
      std::ifstream in(path, std::ios::binary);
      runs += Run(std::string(std::istreambuf_iterator<char>(in), {}));
      ++files;
    }
  }
  std::printf("%s: %zu seeds, %zu files, %zu runs: ok\n", argv[1],
              seeds.size(), files, runs);
  return 0;
}
