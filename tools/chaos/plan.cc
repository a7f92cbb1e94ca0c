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

// A dense wave's fault, one of DenseKinds() (same order).
struct DenseKind {
  std::optional<fault::Spec> worker;
  std::optional<fault::ParentSpec> parent;
  std::optional<OutsideKill> kill;
};

std::vector<DenseKind> DenseCatalogue() {
  std::vector<DenseKind> kinds;
  for (fault::Point p : fault::AllPoints()) {
    for (fault::Mode m : fault::AllModes()) {
      if (!fault::Applies(p, m)) continue;
      fault::Spec spec;
      spec.point = p;
      spec.mode = m;
      kinds.push_back({spec, std::nullopt, std::nullopt});
    }
  }
  for (fault::ParentMode m : fault::AllParentModes()) {
    fault::ParentSpec spec;
    spec.mode = m;
    kinds.push_back({std::nullopt, spec, std::nullopt});
  }
  for (OutsideKill::When when :
       {OutsideKill::When::kBeforeOp, OutsideKill::When::kStartUp,
        OutsideKill::When::kBigTransfer, OutsideKill::When::kShutdown}) {
    for (int signal : {SIGKILL, SIGTERM, SIGSTOP}) {
      OutsideKill kill;
      kill.signal = signal;
      kill.when = when;
      kinds.push_back({std::nullopt, std::nullopt, kill});
    }
  }
  return kinds;
}

// A small op for a dense wave: it runs in well under a millisecond or two.
Op DrawSmallOp(Rng& rng) {
  Op op;
  if (rng.Chance(0.1)) {
    op.is_map = true;
    op.map.kind = rng.Chance(0.5) ? TaskKind::kPow : TaskKind::kFailIfThree;
    const int n = rng.Uniform(1, 12);
    for (int i = 0; i < n; ++i) {
      op.map.xs.push_back(rng.Uniform(0, 5));
      op.map.ys.push_back(rng.Uniform(0, 6));
    }
    op.map.chunksize = rng.Uniform(1, 4);
    op.map.buffersize = rng.Chance(0.6) ? 0 : rng.Uniform(1, 3);
    return op;
  }
  SubmitOp& s = op.submit;
  switch (rng.Weighted({30, 10, 25, 10, 15, 10})) {
    case 0:
      s.kind = TaskKind::kPow;
      s.a = rng.Uniform(0, 9);
      s.b = rng.Uniform(0, 6);
      break;
    case 1:
      s.kind = TaskKind::kSleepMs;
      s.a = rng.Uniform(0, 3);
      break;
    case 2:
      s.kind = TaskKind::kEcho;
      s.text = Text(rng, rng.Uniform(0, 4096));
      break;
    case 3:
      s.kind = TaskKind::kLength;
      s.text = Text(rng, rng.Uniform(0, 8192));
      break;
    case 4:
      s.kind = TaskKind::kFailIfThree;
      s.a = rng.Uniform(0, 5);
      break;
    default:
      s.kind = TaskKind::kNoop;
      break;
  }
  return op;
}

SubmitOp BigEcho(Rng& rng, int lo, int hi) {
  SubmitOp op;
  op.kind = TaskKind::kEcho;
  op.text = Text(rng, rng.Uniform(lo, hi));
  return op;
}

// A short wave with exactly one fault, of the kind the index names: 3 to 8
// small ops, the fault set to fire on one of the first calls (so that it
// nearly always does), the ops it needs to hit (large results for MidSend, a
// task that lasts past a MidTask delay, multi-MiB arguments) put first.
WavePlan MakeDensePlan(uint64_t seed, int64_t index, const PlanParams& params) {
  Rng rng(seed, index);
  WavePlan plan;
  plan.seed = seed;
  plan.index = index;
  plan.start_method = params.start_methods[rng.Uniform(
      0, static_cast<int>(params.start_methods.size()) - 1)];
  static const std::vector<DenseKind>* catalogue =
      new std::vector<DenseKind>(DenseCatalogue());
  const int64_t size = static_cast<int64_t>(catalogue->size());
  const DenseKind& kind = (*catalogue)[static_cast<size_t>(
      ((static_cast<int64_t>(seed % size) + index) % size + size) % size)];
  const int n = rng.Uniform(3, 8);
  for (int i = 0; i < n; ++i) plan.ops.push_back(DrawSmallOp(rng));
  if (kind.worker) {
    fault::Spec spec = *kind.worker;
    spec.exit_code = rng.Uniform(0, 5);
    spec.delay_ms = rng.Uniform(0, 10);
    spec.on_call = rng.Uniform(1, 2);
    // Each of the 2 workers fires on its on_call-th call: shape the first
    // 2 * on_call ops (both workers' calls, whoever takes which).
    for (int i = 0; i < 2 * spec.on_call && i < n; ++i) {
      Op& op = plan.ops[static_cast<size_t>(i)];
      op.is_map = false;
      op.pause_us = 0;
      if (spec.point == fault::Point::kMidSend) {
        op.submit = BigEcho(rng, kBigText, 2 * kBigText);
      } else if (spec.point == fault::Point::kMidTask) {
        op.submit = SubmitOp{TaskKind::kSleepMs, spec.delay_ms + 5, 0, ""};
      }
    }
    plan.fault = spec;
  }
  if (kind.parent) {
    fault::ParentSpec spec = *kind.parent;
    spec.on_event = rng.Uniform(1, 3);
    plan.parent_fault = spec;
  }
  if (kind.kill) {
    OutsideKill kill = *kind.kill;
    kill.target = rng.Uniform(0, 1);
    switch (kill.when) {
      case OutsideKill::When::kBeforeOp:
        kill.before_op = rng.Uniform(1, n - 1);
        break;
      case OutsideKill::When::kStartUp:
        kill.before_op = 1;
        break;
      case OutsideKill::When::kBigTransfer:
        // ops[0] brings the workers up; two multi-MiB arguments follow (one
        // per worker), and the signal comes right after them.
        plan.ops[0] = Op{};
        plan.ops[1] = Op{false, BigEcho(rng, 2 * kBigText, 6 * kBigText), {}, 0};
        plan.ops[2] = Op{false, BigEcho(rng, 2 * kBigText, 6 * kBigText), {}, 0};
        kill.before_op = 3;
        break;
      case OutsideKill::When::kShutdown:
        // The last ops keep both workers busy as Shutdown() comes.
        for (int i = n - 2; i < n; ++i) {
          plan.ops[static_cast<size_t>(i)] =
              Op{false, SubmitOp{TaskKind::kSleepMs, rng.Uniform(2, 8), 0, ""},
                 {}, 0};
        }
        kill.before_op = n;
        break;
    }
    plan.kill = kill;
  }
  return plan;
}

}  // namespace

const char* WhenName(OutsideKill::When when) {
  switch (when) {
    case OutsideKill::When::kBeforeOp:
      return "op";
    case OutsideKill::When::kStartUp:
      return "startup";
    case OutsideKill::When::kBigTransfer:
      return "big_transfer";
    case OutsideKill::When::kShutdown:
      return "shutdown";
  }
  return "?";
}

std::string KindName(const fault::Spec& spec) {
  return absl::StrCat("worker:", fault::PointName(spec.point), "/",
                      fault::ModeName(spec.mode));
}

std::string KindName(const fault::ParentSpec& spec) {
  return absl::StrCat("parent:", fault::ParentModeName(spec.mode));
}

std::string KindName(const OutsideKill& kill) {
  return absl::StrCat("signal:", SignalName(kill.signal), "@",
                      WhenName(kill.when));
}

std::vector<std::string> DenseKinds() {
  std::vector<std::string> names;
  for (const DenseKind& kind : DenseCatalogue()) {
    if (kind.worker) names.push_back(KindName(*kind.worker));
    if (kind.parent) names.push_back(KindName(*kind.parent));
    if (kind.kill) names.push_back(KindName(*kind.kill));
  }
  return names;
}

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
  if (params.dense) return MakeDensePlan(seed, index, params);
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
  if (plan.parent_fault) {
    absl::StrAppend(&out, ", parent fault ",
                    fault::ParentModeName(plan.parent_fault->mode),
                    " on event ", plan.parent_fault->on_event);
  }
  if (plan.kill) {
    absl::StrAppend(&out, ", ", SignalName(plan.kill->signal), " to worker #",
                    plan.kill->target, " ");
    if (plan.kill->when != OutsideKill::When::kBeforeOp) {
      absl::StrAppend(&out, "at ", WhenName(plan.kill->when), " ");
    }
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
