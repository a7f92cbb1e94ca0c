// main() for running a fuzz target without libFuzzer (any compiler), as the
// replay tests of fuzz/BUILD do under the normal, ASan and TSan builds.
//
// Runs LLVMFuzzerTestOneInput on the seeds of the named target (seeds.h), on
// every prefix of each seed and on each seed with every byte flipped (a small,
// deterministic stand-in for mutation), and then on every file named on the
// command line or found in a directory named there (saved reproducers;
// names that start with a dot, such as the .keep that holds an empty
// regressions folder in git, are not inputs). A failed check aborts, failing
// the test. A FILE_OR_DIR that does not exist (a mistyped or moved folder)
// fails it too (exit 1): the reproducers would silently stop being replayed.
//
// Usage: replay TARGET [FILE_OR_DIR...]     TARGET: wire, codec or handshake
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

// Adds to `files` the files named by `path`: itself, or those in the
// directory (recursively; names starting with '.' left out). Returns false,
// saying why on stderr, when `path` or a directory in it cannot be read.
bool Files(const std::string& path, std::vector<std::string>* files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "replay: %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    files->push_back(path);
    return true;
  }
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) {
    std::fprintf(stderr, "replay: %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  bool ok = true;
  for (const std::string& name : names) ok &= Files(path + "/" + name, files);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s wire|codec|handshake [FILE_OR_DIR...]\n",
                 argv[0]);
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
    std::vector<std::string> found;
    if (!Files(argv[i], &found)) {
      std::fprintf(stderr, "%s: cannot replay %s (see above)\n", argv[1],
                   argv[i]);
      return 1;
    }
    if (found.empty()) {
      std::printf("%s: no files in %s yet\n", argv[1], argv[i]);
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
