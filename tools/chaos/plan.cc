#include "tools/chaos/plan.h"

#include <signal.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "core/errors.h"

namespace procpool {
namespace chaos {
namespace {

constexpr int kMaxOps = 30;
constexpr int kMaxMaps = 3;
constexpr int kMaxMapElements = 40;
constexpr int kBigText = 1 << 20;  // kMidSend fires on results this large

class Rng {
 public:
  Rng(uint64_t seed, int64_t index) {
    std::seed_seq seq{
        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
        static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32)};
    engine_.seed(seq);
  }

  int Uniform(int lo, int hi) {  // [lo, hi]
    return std::uniform_int_distribution<int>(lo, hi)(engine_);
  }
  bool Chance(double p) {
    return std::uniform_real_distribution<double>(0, 1)(engine_) < p;
  }
  // Index into `weights`, drawn in proportion to them.
  int Weighted(std::initializer_list<int> weights) {
    return std::discrete_distribution<int>(weights.begin(),
                                           weights.end())(engine_);
  }

 private:
  std::mt19937_64 engine_;
};

std::string Text(Rng& rng, int size) {
  std::string s(static_cast<size_t>(size),
                static_cast<char>('a' + rng.Uniform(0, 25)));
  // A few random bytes, so that a result mixed up with another one shows.
  for (int i = 0; i < 16 && size > 0; ++i) {
    s[static_cast<size_t>(rng.Uniform(0, size - 1))] =
        static_cast<char>(rng.Uniform(0, 255));
  }
  return s;
}

SubmitOp DrawSubmit(Rng& rng) {
  SubmitOp op;
  switch (rng.Weighted({25, 20, 20, 10, 15, 10})) {
    case 0:
      op.kind = TaskKind::kPow;
      op.a = rng.Uniform(0, 9);
      op.b = rng.Uniform(0, 6);
      break;
    case 1:
      op.kind = TaskKind::kSleepMs;
      op.a = rng.Uniform(0, 50);
      break;
    case 2:
      op.kind = TaskKind::kEcho;
      op.text = Text(rng, rng.Chance(0.15) ? rng.Uniform(kBigText, 2 * kBigText)
                                           : rng.Uniform(0, 4096));
      break;
    case 3:
      op.kind = TaskKind::kLength;
      op.text = Text(rng, rng.Uniform(0, 65536));
      break;
    case 4:
      op.kind = TaskKind::kFailIfThree;
      op.a = rng.Uniform(0, 5);
      break;
    default:
      op.kind = TaskKind::kNoop;
      break;
  }
  return op;
}

MapOp DrawMap(Rng& rng) {
  MapOp op;
  const int n = rng.Uniform(1, kMaxMapElements);
  switch (rng.Uniform(0, 2)) {
    case 0:
      op.kind = TaskKind::kPow;
      for (int i = 0; i < n; ++i) {
        op.xs.push_back(rng.Uniform(0, 9));
        op.ys.push_back(rng.Uniform(0, 6));
      }
      break;
    case 1:
      op.kind = TaskKind::kFailIfThree;
      for (int i = 0; i < n; ++i) op.xs.push_back(rng.Uniform(0, 5));
      break;
    default:
      op.kind = TaskKind::kSleepMs;
      for (int i = 0; i < n; ++i) op.xs.push_back(rng.Uniform(0, 5));
      break;
  }
  op.chunksize = rng.Uniform(1, 5);
  op.buffersize = rng.Chance(0.6) ? 0 : rng.Uniform(1, 3);
  return op;
}

fault::Spec DrawFault(Rng& rng) {
  const std::vector<fault::Point> points = fault::AllPoints();
  const std::vector<fault::Mode> modes = fault::AllModes();
  fault::Spec spec;
  do {
    spec.point = points[rng.Uniform(0, static_cast<int>(points.size()) - 1)];
    spec.mode = modes[rng.Uniform(0, static_cast<int>(modes.size()) - 1)];
  } while (!fault::Applies(spec.point, spec.mode));
  spec.exit_code = rng.Uniform(0, 5);  // 0 too: an unexpected clean exit
  spec.delay_ms = rng.Uniform(0, 60);
  spec.on_call = rng.Uniform(1, 4);
  return spec;
}

}  // namespace

const char* TaskKindName(TaskKind kind) {
  switch (kind) {
    case TaskKind::kPow:
      return "Pow";
    case TaskKind::kSleepMs:
      return "SleepMs";
    case TaskKind::kEcho:
      return "Echo";
    case TaskKind::kLength:
      return "Length";
    case TaskKind::kFailIfThree:
      return "FailIfThree";
    case TaskKind::kNoop:
      return "Noop";
  }
  return "?";
}

WavePlan MakePlan(uint64_t seed, int64_t index, const PlanParams& params) {
  Rng rng(seed, index);
  WavePlan plan;
  plan.seed = seed;
  plan.index = index;
  plan.start_method = params.start_methods[rng.Uniform(
      0, static_cast<int>(params.start_methods.size()) - 1)];
  const int n = rng.Uniform(2, kMaxOps);
  int maps = 0;
  for (int i = 0; i < n; ++i) {
    Op op;
    op.pause_us = rng.Chance(0.2) ? rng.Uniform(0, 3000) : 0;
    if (maps < kMaxMaps && rng.Chance(0.2)) {
      op.is_map = true;
      op.map = DrawMap(rng);
      ++maps;
    } else {
      op.submit = DrawSubmit(rng);
    }
    plan.ops.push_back(std::move(op));
  }
  if (rng.Chance(params.fault_probability)) {
    plan.fault = DrawFault(rng);
    if (plan.fault->point == fault::Point::kMidSend) {
      // Large results on the first calls, or the fault has nothing to hit.
      for (int i = 0; i < plan.fault->on_call + 1 && i < n; ++i) {
        plan.ops[i].is_map = false;
        plan.ops[i].submit.kind = TaskKind::kEcho;
        plan.ops[i].submit.text =
            Text(rng, rng.Uniform(kBigText, 2 * kBigText));
      }
    }
  }
  if (rng.Chance(params.kill_probability)) {
    OutsideKill kill;
    const int s = rng.Weighted({40, 35, 25});
    kill.signal = s == 0 ? SIGKILL : s == 1 ? SIGTERM : SIGSTOP;
    kill.before_op = rng.Uniform(1, n);
    kill.delay_ms = rng.Uniform(0, 30);
    kill.target = rng.Uniform(0, 1);
    plan.kill = kill;
  }
  return plan;
}

std::string Describe(const WavePlan& plan) {
  std::string out = absl::StrCat("wave ", plan.index, " (seed ", plan.seed,
                                 "): ", StartMethodName(plan.start_method));
  if (plan.fault) {
    const fault::Spec& f = *plan.fault;
    absl::StrAppend(&out, ", fault ", fault::PointName(f.point), "/",
                    fault::ModeName(f.mode), " on call ", f.on_call);
    if (f.mode == fault::Mode::kExit)
      absl::StrAppend(&out, " code ", f.exit_code);
    if (f.point == fault::Point::kMidTask) {
      absl::StrAppend(&out, " after ", f.delay_ms, " ms");
    }
  }
  if (plan.kill) {
    absl::StrAppend(&out, ", ", SignalName(plan.kill->signal), " to worker #",
                    plan.kill->target, " ");
    if (plan.kill->before_op < static_cast<int>(plan.ops.size())) {
      absl::StrAppend(&out, "before op ", plan.kill->before_op);
    } else {
      absl::StrAppend(&out, plan.kill->delay_ms, " ms after the last op");
    }
  }
  absl::StrAppend(&out, "; ops:");
  for (const Op& op : plan.ops) {
    if (op.is_map) {
      absl::StrAppend(&out, " Map(", TaskKindName(op.map.kind), " x",
                      op.map.xs.size(), " chunk ", op.map.chunksize, " buf ",
                      op.map.buffersize, ")");
    } else if (!op.submit.text.empty() && op.submit.text.size() >= kBigText) {
      absl::StrAppend(&out, " ", TaskKindName(op.submit.kind), "(",
                      op.submit.text.size() >> 10, " KiB)");
    } else {
      absl::StrAppend(&out, " ", TaskKindName(op.submit.kind));
    }
  }
  return out;
}

}  // namespace chaos
}  // namespace procpool
