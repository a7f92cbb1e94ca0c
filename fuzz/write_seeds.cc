// Writes the seeds of one fuzz target (seeds.h) as files seed_000, seed_001,
// ... into a directory that exists, for libFuzzer's starting corpus.
//
// Usage: write_seeds wire|codec|handshake DIR
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz/seeds.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s wire|codec|handshake DIR\n", argv[0]);
    return 2;
  }
  const std::vector<std::string> seeds = procpool::fuzz::SeedsFor(argv[1]);
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: unknown target '%s'\n", argv[0], argv[1]);
    return 2;
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/seed_%03zu", i);
    std::ofstream out(std::string(argv[2]) + name, std::ios::binary);
    out.write(seeds[i].data(), static_cast<std::streamsize>(seeds[i].size()));
    if (!out) {
      std::fprintf(stderr, "%s: cannot write %s%s\n", argv[0], argv[2], name);
      return 1;
    }
  }
  return 0;
}
