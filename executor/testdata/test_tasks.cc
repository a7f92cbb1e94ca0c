#include "executor/testdata/test_tasks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "executor/process_pool_executor.h"

namespace procpool {
namespace test_tasks {

void ProcpoolEncode(Writer&, const EncodeThrows&) {
  throw std::length_error("EncodeThrows cannot be encoded");
}
absl::Status ProcpoolDecode(Reader&, EncodeThrows*) { return absl::OkStatus(); }

void ProcpoolEncode(Writer& w, const ThreeEncodesHalfway& v) {
  w.WriteFixed(v.value);
  if (v.value == 3) throw std::length_error("three encodes halfway");
}
absl::Status ProcpoolDecode(Reader& r, ThreeEncodesHalfway* v) {
  return r.ReadFixed(&v->value);
}

void ProcpoolEncode(Writer& w, const DecodeFails&) { w.WriteVarint(1); }
absl::Status ProcpoolDecode(Reader&, DecodeFails*) {
  return absl::DataLossError("DecodeFails never decodes");
}

void ProcpoolEncode(Writer&, const EncodeKills&) { raise(SIGKILL); }
absl::Status ProcpoolDecode(Reader&, EncodeKills*) { return absl::OkStatus(); }

int Pow(int base, int exp) {
  int r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}
void Noop() {}
int GetPid() { return getpid(); }
int PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0 ||
      sched_getaffinity(0, sizeof(set), &set) != 0) {
    throw std::runtime_error(std::string("PinToCpu: ") + std::strerror(errno));
  }
  return CPU_COUNT(&set);
}
int SleepMs(int ms) {
  absl::SleepFor(absl::Milliseconds(ms));
  return ms;
}
int SleepThenPid(int ms) {
  absl::SleepFor(absl::Milliseconds(ms));
  return getpid();
}
std::string Echo(const std::string& s) { return s; }
std::tuple<std::string> EchoInTuple(const std::string& s) { return {s}; }
int64_t Length(const std::string& s) { return static_cast<int64_t>(s.size()); }

double SumArray(SharedArray<double> xs) {
  double total = 0;
  for (double x : xs) total += x;
  return total;
}

int64_t SquaresInto(SharedArray<double> out, int64_t part, int64_t parts) {
  const size_t n = out.size();
  const size_t begin = n * part / parts, end = n * (part + 1) / parts;
  for (size_t j = begin; j < end; ++j) out[j] = static_cast<double>(j) * j;
  return static_cast<int64_t>(end - begin);
}

int Throw(const std::string& kind) {
  if (kind == "invalid_argument") throw std::invalid_argument("bad argument");
  if (kind == "out_of_range") throw std::out_of_range("out of range");
  if (kind == "runtime_error") throw std::runtime_error("runtime");
  if (kind == "logic_error") throw std::logic_error("logic");
  if (kind == "domain_error") throw std::domain_error("domain");
  if (kind == "length_error") throw std::length_error("length");
  if (kind == "overflow_error") throw std::overflow_error("overflow");
  if (kind == "underflow_error") throw std::underflow_error("underflow");
  if (kind == "range_error") throw std::range_error("range");
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "my_error") throw MyError("mine");
  if (kind == "unregistered") throw UnregisteredError("not registered");
  if (kind == "int") throw 42;
  return 0;
}

int DieBy(const std::string& how) {
  if (how == "SIGKILL") raise(SIGKILL);
  if (how == "SIGTERM") raise(SIGTERM);
  if (how == "SIGSEGV") raise(SIGSEGV);
  if (how == "abort") abort();
  int code = 0;
  if (absl::SimpleAtoi(how, &code)) _exit(code);
  return -1;
}

int SleepThenDie(int ms, const std::string& how) {
  absl::SleepFor(absl::Milliseconds(ms));
  return DieBy(how);
}

EncodeThrows ReturnEncodeThrows() { return {}; }
DecodeFails ReturnDecodeFails() { return {}; }
int TakeDecodeFails(DecodeFails) { return 1; }
EncodeKills ReturnEncodeKills() { return {}; }

int RaiseSigintAndReturn(int v) {
  raise(SIGINT);
  return v;
}

int FailIfThree(int x) {
  if (x == 3) throw std::invalid_argument("three");
  return x * 10;
}

int AppendMarker(const std::string& path, int ms) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ssize_t ignored = write(fd, "x", 1);
    (void)ignored;
    close(fd);
  }
  absl::SleepFor(absl::Milliseconds(ms));
  return ms;
}

ThreeEncodesHalfway EncodeHalfwayIfThree(int x) { return {x}; }

std::string Filler(int n) {
  return std::string(static_cast<size_t>(n), static_cast<char>('a' + n % 26));
}

int CorruptChannel(int ms) {
  for (int fd = 3; fd < 64; ++fd) {
    char target[64];
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::string(target).rfind("socket:", 0) != 0) continue;
    const char garbage[32] = "this is not a procpool frame!!";
    ssize_t ignored = write(fd, garbage, sizeof(garbage));
    (void)ignored;
  }
  absl::SleepFor(absl::Milliseconds(ms));
  return 0;
}

int DieOnceThenReturn(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
    raise(SIGKILL);
  }
  return 7;
}

std::string DieOnceThenEcho(const std::string& path,
                            const std::string& payload) {
  DieOnceThenReturn(path);
  return payload;
}

int64_t AllocateMiB(int mib) {
  std::vector<char> block(static_cast<size_t>(mib) << 20);
  for (size_t i = 0; i < block.size(); i += 4096) block[i] = 1;
  return static_cast<int64_t>(block.size());
}

int LeakMiB(int mib) {
  char* block = new char[static_cast<size_t>(mib) << 20];
  for (size_t i = 0; i < (static_cast<size_t>(mib) << 20); i += 4096) {
    block[i] = 1;
  }
  return getpid();
}

std::string NetnsId() {
  char target[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/ns/net", target, sizeof(target) - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "unknown";
}

std::vector<std::string> Ipv4Addresses() {
  std::vector<std::string> addresses;
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return addresses;
  for (struct ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(a->ifa_addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != nullptr) {
      addresses.push_back(text);
    }
  }
  freeifaddrs(list);
  return addresses;
}

namespace {
int init_value = 0;
int init_calls = 0;
}  // namespace

void SetInitValue(int v) {
  init_value = v;
  ++init_calls;
}
int GetInitValue() { return init_value; }
int GetInitCalls() { return init_calls; }
void InitThrows() { throw std::runtime_error("initializer failed on purpose"); }
void InitDies() { _exit(7); }

}  // namespace test_tasks
}  // namespace procpool

namespace tt = ::procpool::test_tasks;
PROCPOOL_EXCEPTION(tt::MyError);
PROCPOOL_TASK(tt::Pow);
PROCPOOL_TASK(tt::Noop);
PROCPOOL_TASK(tt::SumArray);
PROCPOOL_TASK(tt::SquaresInto);
PROCPOOL_TASK(tt::GetPid);
PROCPOOL_TASK(tt::PinToCpu);
PROCPOOL_TASK(tt::SleepMs);
PROCPOOL_TASK(tt::SleepThenPid);
PROCPOOL_TASK(tt::Echo);
PROCPOOL_TASK(tt::EchoInTuple);
PROCPOOL_TASK(tt::Length);
PROCPOOL_TASK(tt::Throw);
PROCPOOL_TASK(tt::DieBy);
PROCPOOL_TASK(tt::SleepThenDie);
PROCPOOL_TASK(tt::ReturnEncodeThrows);
PROCPOOL_TASK(tt::ReturnDecodeFails);
PROCPOOL_TASK(tt::TakeDecodeFails);
PROCPOOL_TASK(tt::ReturnEncodeKills);
PROCPOOL_TASK(tt::RaiseSigintAndReturn);
PROCPOOL_TASK(tt::FailIfThree);
PROCPOOL_TASK(tt::AppendMarker);
PROCPOOL_TASK(tt::Filler);
PROCPOOL_TASK(tt::EncodeHalfwayIfThree);
PROCPOOL_TASK(tt::NetnsId);
PROCPOOL_TASK(tt::Ipv4Addresses);
PROCPOOL_TASK(tt::CorruptChannel);
PROCPOOL_TASK(tt::DieOnceThenReturn);
PROCPOOL_TASK(tt::DieOnceThenEcho);
PROCPOOL_TASK(tt::AllocateMiB);
PROCPOOL_TASK(tt::LeakMiB);
PROCPOOL_TASK(tt::SetInitValue);
PROCPOOL_TASK(tt::GetInitValue);
PROCPOOL_TASK(tt::GetInitCalls);
PROCPOOL_TASK(tt::InitThrows);
PROCPOOL_TASK(tt::InitDies);
