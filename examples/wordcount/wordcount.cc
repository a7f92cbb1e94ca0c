// A parallel `wc` + checksum over a real directory tree, with Map and
// chunksize.
//
// The parent walks the tree (std::filesystem) and hands the file paths to
// ProcessPoolExecutor::Map in chunks of --chunksize: each worker opens its
// files, counts lines, words and bytes as `wc` does and folds the bytes into
// an FNV-1a checksum. The parent adds the per-file results up in input order,
// then does the same work sequentially in its own process and checks that
// both agree.
//
// Python:
//   with ProcessPoolExecutor() as pool:
//       for path, r in zip(paths, pool.map(count_file, paths, chunksize=64)):
//           ...
//
// Shown here: Map with MapOptions{chunksize}, a user type (FileCount) that
// travels between processes through a codec plug-in, and a task's exception
// (an unreadable file) rethrown for its element only while the rest of the
// Map goes on.
//
// Usage:
//   bazel run //examples/wordcount                        # /usr/share/doc
//   bazel run //examples/wordcount -- --root=/usr/include --chunksize=16
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(std::string, root, "/usr/share/doc", "The directory tree to count.");
ABSL_FLAG(int, chunksize, 16, "Files per task (MapOptions::chunksize).");
ABSL_FLAG(bool, sequential, true,
          "Also count sequentially in this process and compare.");

namespace wordcount {

// What a worker sends back for one file. A user type: it crosses the process
// boundary through the two ADL functions below (serialization/codec.h, way b).
struct FileCount {
  uint64_t lines = 0;
  uint64_t words = 0;
  uint64_t bytes = 0;
  uint64_t fnv1a = 0;  // FNV-1a 64 of the file's bytes

  FileCount& operator+=(const FileCount& o) {
    lines += o.lines;
    words += o.words;
    bytes += o.bytes;
    // Order-dependent fold of the per-file checksums: Map keeps input order,
    // so the parallel total must equal the sequential one exactly.
    fnv1a = (fnv1a ^ o.fnv1a) * 1099511628211ull;
    return *this;
  }
  bool operator==(const FileCount& o) const {
    return lines == o.lines && words == o.words && bytes == o.bytes &&
           fnv1a == o.fnv1a;
  }
};

void ProcpoolEncode(procpool::Writer& w, const FileCount& c) {
  procpool::WriteValue(w, c.lines);
  procpool::WriteValue(w, c.words);
  procpool::WriteValue(w, c.bytes);
  procpool::WriteValue(w, c.fnv1a);
}
absl::Status ProcpoolDecode(procpool::Reader& r, FileCount* c) {
  RETURN_IF_ERROR(procpool::ReadValue(r, &c->lines));
  RETURN_IF_ERROR(procpool::ReadValue(r, &c->words));
  RETURN_IF_ERROR(procpool::ReadValue(r, &c->bytes));
  return procpool::ReadValue(r, &c->fnv1a);
}
std::string ProcpoolSignature(const FileCount*) {
  return "wordcount.FileCount/v1";
}

// Counts like `LC_ALL=C wc` on text: a word is a maximal run of bytes that
// are not ASCII white space. Throws std::runtime_error if the file cannot be
// read; in the parent that surfaces as the same exception for this file's
// element.
FileCount CountFile(std::string path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open " + path + ": " +
                             std::strerror(errno));
  }
  FileCount c;
  c.fnv1a = 14695981039346656037ull;
  bool in_word = false;
  char buf[1 << 16];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    const std::streamsize n = in.gcount();
    c.bytes += n;
    for (std::streamsize i = 0; i < n; ++i) {
      const unsigned char b = static_cast<unsigned char>(buf[i]);
      c.fnv1a = (c.fnv1a ^ b) * 1099511628211ull;
      if (b == '\n') ++c.lines;
      const bool space = b == ' ' || (b >= '\t' && b <= '\r');
      if (!space && !in_word) ++c.words;
      in_word = !space;
    }
  }
  if (in.bad()) throw std::runtime_error("cannot read " + path);
  return c;
}
PROCPOOL_TASK(CountFile);

// Regular files under `root`, in directory order; symbolic links and
// unreadable directories are skipped.
std::vector<std::string> ListFiles(const std::string& root) {
  std::vector<std::string> files;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(
      root, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw std::runtime_error("cannot list " + root + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      files.push_back(it->path().string());
    }
  }
  return files;
}

void PrintTotals(const char* label, const FileCount& total, size_t files,
                 size_t errors, double seconds) {
  std::cout << absl::StrFormat(
      "%-10s %8d files %10d lines %11d words %13d bytes  fnv1a %016x  "
      "%d unreadable  %.3fs\n",
      label, files, total.lines, total.words, total.bytes, total.fnv1a, errors,
      seconds);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

int Main() {
  const std::string root = absl::GetFlag(FLAGS_root);
  const std::vector<std::string> files = ListFiles(root);
  // Flushed before the pool starts: a worker started with
  // --procpool_start_method=fork inherits unflushed stdio buffers.
  std::cout << root << ": " << files.size() << " files" << std::endl;

  FileCount parallel;
  size_t parallel_errors = 0;
  auto start = std::chrono::steady_clock::now();
  {
    procpool::ProcessPoolExecutor pool;  // --procpool_* flags decide
    procpool::MapOptions options;
    options.chunksize = absl::GetFlag(FLAGS_chunksize);
    auto results = pool.Map(CountFile, files, options);
    size_t i = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++i) {
      try {
        parallel += *it;  // rethrows this file's exception, if any
      } catch (const std::runtime_error& e) {
        std::cerr << "skipped: " << e.what() << "\n";
        ++parallel_errors;
      }
    }
  }
  PrintTotals("parallel", parallel, files.size(), parallel_errors,
              SecondsSince(start));

  if (!absl::GetFlag(FLAGS_sequential)) return 0;
  FileCount sequential;
  size_t sequential_errors = 0;
  start = std::chrono::steady_clock::now();
  for (const std::string& path : files) {
    try {
      sequential += CountFile(path);
    } catch (const std::runtime_error&) {
      ++sequential_errors;
    }
  }
  PrintTotals("sequential", sequential, files.size(), sequential_errors,
              SecondsSince(start));
  const bool same =
      parallel == sequential && parallel_errors == sequential_errors;
  std::cout << (same ? "match: parallel == sequential\n"
                     : "MISMATCH: parallel != sequential\n");
  return same ? 0 : 1;
}

}  // namespace wordcount

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::ParseCommandLine(argc, argv);
  return wordcount::Main();
}
