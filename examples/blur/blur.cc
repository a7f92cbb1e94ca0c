// A 3x3 box blur of a grayscale image, split by bands of rows across the
// workers, with the image in shared arrays: no pixel is copied to a worker or
// back (issue 15's shared arrays; README.md "Big data").
//
// The input is a SharedArray<float> (immutable: sealed when first sent, read-
// only in the workers); the output a SharedArray<float> in
// SharedArrayMode::kOutput, of which each task writes its own band of rows
// (numpy's out=). The parent reads the output once every band's future is
// done, and checks it against the same blur run in this process.
//
// Python (with multiprocessing.shared_memory and numpy):
//   src = SharedMemory(create=True, size=img.nbytes); dst = ...
//   with ProcessPoolExecutor() as pool:
//       for f in [pool.submit(blur_rows, src.name, dst.name, shape, r0, r1)
//                 for r0, r1 in bands]: f.result()
//
// Usage:
//   bazel run //examples/blur
//   bazel run //examples/blur -- --width=8192 --height=8192 --bands=16
#include <chrono>
#include <cstdint>
#include <iostream>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(int64_t, width, 4096, "Image width in pixels.");
ABSL_FLAG(int64_t, height, 4096, "Image height in pixels.");
ABSL_FLAG(int64_t, bands, 8, "Tasks: bands of rows, one task each.");

namespace blur {

using procpool::SharedArray;

// Blurs rows [row_begin, row_end) of `in` (width x height, row-major) into
// the same rows of `out`: each pixel becomes the mean of the pixels of its
// 3x3 neighbourhood that lie in the image.
void BlurRows(const float* in, float* out, int64_t width, int64_t height,
              int64_t row_begin, int64_t row_end) {
  for (int64_t y = row_begin; y < row_end; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      float sum = 0;
      int count = 0;
      for (int64_t dy = -1; dy <= 1; ++dy) {
        const int64_t yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          sum += in[yy * width + xx];
          ++count;
        }
      }
      out[y * width + x] = sum / count;
    }
  }
}

// The task: band `band` of `bands`. Returns how many rows it wrote.
int64_t BlurBand(SharedArray<float> in, SharedArray<float> out, int64_t width,
                 int64_t band, int64_t bands) {
  const int64_t height = static_cast<int64_t>(in.size()) / width;
  const int64_t begin = height * band / bands;
  const int64_t end = height * (band + 1) / bands;
  const SharedArray<float>& read_only = in;  // sealed: reading only
  BlurRows(read_only.data(), out.data(), width, height, begin, end);
  return end - begin;
}
PROCPOOL_TASK(BlurBand);

int64_t Ready(int64_t x) { return x; }
PROCPOOL_TASK(Ready);

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

int Main() {
  const int64_t width = absl::GetFlag(FLAGS_width);
  const int64_t height = absl::GetFlag(FLAGS_height);
  const int64_t bands = absl::GetFlag(FLAGS_bands);
  if (width < 1 || height < 1 || bands < 1) {
    std::cerr << "blur: --width, --height and --bands must be >= 1\n";
    return 2;
  }
  const size_t pixels = static_cast<size_t>(width * height);

  // A synthetic image: a gradient with a checkerboard over it.
  SharedArray<float> image(pixels);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      image[y * width + x] = static_cast<float>((x + y) % 256) +
                             (((x / 16 + y / 16) % 2) != 0 ? 64.0f : 0.0f);
    }
  }
  SharedArray<float> blurred(pixels, procpool::SharedArrayMode::kOutput);

  procpool::ProcessPoolExecutor pool;
  // Start the workers before the clock does (the pool starts them on
  // demand).
  std::vector<procpool::Future<int64_t>> warm;
  for (int64_t b = 0; b < bands; ++b) warm.push_back(pool.Submit(Ready, b));
  for (procpool::Future<int64_t>& f : warm) f.Get();
  const auto start = std::chrono::steady_clock::now();
  std::vector<procpool::Future<int64_t>> parts;
  for (int64_t b = 0; b < bands; ++b) {
    parts.push_back(pool.Submit(BlurBand, image, blurred, width, b, bands));
  }
  int64_t rows = 0;
  for (procpool::Future<int64_t>& f : parts) rows += f.Get();
  const double pool_s = SecondsSince(start);

  std::vector<float> expected(pixels);
  const auto seq_start = std::chrono::steady_clock::now();
  BlurRows(image.data(), expected.data(), width, height, 0, height);
  const double seq_s = SecondsSince(seq_start);

  size_t mismatches = 0;
  for (size_t i = 0; i < pixels; ++i) mismatches += blurred[i] != expected[i];
  std::cout << absl::StrFormat(
      "blurred %dx%d (%.0f MiB) in %d bands: %d rows, pool %.3f s, one "
      "process %.3f s (%.2fx)\n%s\n",
      width, height, pixels * sizeof(float) / 1048576.0, bands, rows, pool_s,
      seq_s, seq_s / pool_s,
      mismatches == 0
          ? "matches the sequential blur"
          : absl::StrFormat("MISMATCH: %d pixels differ", mismatches));
  return mismatches == 0 && rows == height ? 0 : 1;
}

}  // namespace blur

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::ParseCommandLine(argc, argv);
  return blur::Main();
}
