#include "core/exception_registry.h"

#include <atomic>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "absl/base/attributes.h"
#include "core/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Registered at global scope, under its plain name.
struct GlobalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
PROCPOOL_EXCEPTION(GlobalError);

// Registered at global scope under a qualified name.
namespace outer {
struct QualifiedError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
}  // namespace outer
PROCPOOL_EXCEPTION(outer::QualifiedError);

// Registered inside a namespace, twice in one file.
namespace ns {
struct NsError : std::logic_error {
  using std::logic_error::logic_error;
};
class PlainError : public std::exception {
 public:
  explicit PlainError(const std::string& message) : message_(message) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};
PROCPOOL_EXCEPTION(NsError);
PROCPOOL_EXCEPTION(PlainError);
// A second registration of the same type under the same name is harmless.
PROCPOOL_EXCEPTION(NsError);
}  // namespace ns

// Never registered.
namespace unreg {
struct MyErr : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace unreg

// Registered, but its constructor refuses the message "refuse".
struct PickyError : std::runtime_error {
  explicit PickyError(const std::string& message)
      : std::runtime_error(message) {
    if (message == "refuse") throw std::logic_error("refused");
  }
};
PROCPOOL_EXCEPTION(PickyError);

namespace procpool {
namespace {

using ::testing::HasSubstr;

// Throws `thrown`, captures it in a catch (...), and returns what a worker
// would send.
template <class T>
CapturedException CaptureThrown(const T& thrown) {
  try {
    throw thrown;
  } catch (...) {
    return CaptureCurrentException();
  }
}

RemoteTracebackInfo Info() {
  RemoteTracebackInfo info;
  info.pid = 321;
  info.task_name = "Task";
  info.type_name = "overwritten by RebuildException";
  info.traceback = "0x1 Task\n";
  return info;
}

// Rebuilds `captured` and checks that it comes back as exactly
// WithRemoteTraceback<E> (so `catch (const E&)` catches it) with the same
// what() and the traceback attached.
template <class E>
void ExpectRoundTripAs(const CapturedException& captured,
                       const std::string& expected_what) {
  std::exception_ptr rebuilt =
      RebuildException(captured.type_name, captured.message, Info());
  ASSERT_TRUE(rebuilt);
  try {
    std::rethrow_exception(rebuilt);
  } catch (const E& e) {
    EXPECT_EQ(typeid(e), typeid(WithRemoteTraceback<E>))
        << "came back as a different type than " << captured.type_name;
    EXPECT_EQ(std::string(e.what()), expected_what);
    const RemoteTraceback* tb = GetRemoteTraceback(e);
    ASSERT_NE(tb, nullptr);
    EXPECT_EQ(tb->pid(), 321);
    EXPECT_EQ(tb->task_name(), "Task");
    EXPECT_EQ(tb->type_name(), captured.type_name);
    EXPECT_EQ(tb->traceback(), "0x1 Task\n");
  } catch (...) {
    ADD_FAILURE() << captured.type_name << " was not rebuilt as itself";
  }
  EXPECT_NE(GetRemoteTraceback(rebuilt), nullptr);
}

template <class E>
class StandardTypeTest : public ::testing::Test {};

using StandardTypes =
    ::testing::Types<std::invalid_argument, std::out_of_range,
                     std::runtime_error, std::logic_error, std::domain_error,
                     std::length_error, std::overflow_error,
                     std::underflow_error, std::range_error>;
TYPED_TEST_SUITE(StandardTypeTest, StandardTypes);

TYPED_TEST(StandardTypeTest, RoundTrips) {
  CapturedException captured = CaptureThrown(TypeParam("what went wrong"));
  EXPECT_EQ(captured.message, "what went wrong");
  ExpectRoundTripAs<TypeParam>(captured, "what went wrong");
}

TEST(StandardTypes, Names) {
  EXPECT_EQ(CaptureThrown(std::invalid_argument("x")).type_name,
            "std::invalid_argument");
  EXPECT_EQ(CaptureThrown(std::out_of_range("x")).type_name,
            "std::out_of_range");
  EXPECT_EQ(CaptureThrown(std::runtime_error("x")).type_name,
            "std::runtime_error");
  EXPECT_EQ(CaptureThrown(std::range_error("x")).type_name,
            "std::range_error");
}

TEST(StandardTypes, BadAlloc) {
  CapturedException captured = CaptureThrown(std::bad_alloc());
  EXPECT_EQ(captured.type_name, "std::bad_alloc");
  EXPECT_EQ(captured.message, std::bad_alloc().what());
  ExpectRoundTripAs<std::bad_alloc>(captured, std::bad_alloc().what());
}

TEST(StandardTypes, ThrownByTheLibrary) {
  CapturedException captured;
  try {
    std::vector<int> v;
    (void)v.at(3);
  } catch (...) {
    captured = CaptureCurrentException();
  }
  EXPECT_EQ(captured.type_name, "std::out_of_range");
  ExpectRoundTripAs<std::out_of_range>(captured, captured.message);
}

TEST(ProcpoolTypes, RoundTrip) {
  CapturedException timeout = CaptureThrown(TimeoutError("too slow"));
  EXPECT_EQ(timeout.type_name, "procpool::TimeoutError");
  ExpectRoundTripAs<TimeoutError>(timeout, "too slow");
  ExpectRoundTripAs<Error>(CaptureThrown(Error("e")), "e");
  ExpectRoundTripAs<CancelledError>(CaptureThrown(CancelledError("c")), "c");
  ExpectRoundTripAs<InvalidStateError>(CaptureThrown(InvalidStateError("i")),
                                       "i");
  ExpectRoundTripAs<ShutdownError>(CaptureThrown(ShutdownError("s")), "s");
  ExpectRoundTripAs<BrokenExecutor>(CaptureThrown(BrokenExecutor("b")), "b");
  WorkerCrash crash;
  crash.pid = 5;
  crash.signal = 9;
  BrokenProcessPool broken("broken", crash);
  ExpectRoundTripAs<BrokenProcessPool>(CaptureThrown(broken), broken.what());
}

TEST(ProcpoolTypes, RemoteErrorKeepsItsOriginalType) {
  CapturedException captured = CaptureThrown(RemoteError("unreg::Foo", "m"));
  EXPECT_EQ(captured.type_name, "unreg::Foo");
  EXPECT_EQ(captured.message, "m");
  std::exception_ptr rebuilt =
      RebuildException(captured.type_name, captured.message, Info());
  try {
    std::rethrow_exception(rebuilt);
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "unreg::Foo");
    EXPECT_STREQ(e.what(), "m");
  }

  CapturedException plain = CaptureThrown(RemoteError("m"));
  EXPECT_EQ(plain.type_name, "procpool::RemoteError");
  ExpectRoundTripAs<RemoteError>(plain, "m");
}

TEST(RegisteredTypes, GlobalScope) {
  CapturedException captured = CaptureThrown(GlobalError("global"));
  EXPECT_EQ(captured.type_name, "GlobalError");
  ExpectRoundTripAs<GlobalError>(captured, "global");
}

TEST(RegisteredTypes, QualifiedName) {
  CapturedException captured = CaptureThrown(outer::QualifiedError("q"));
  EXPECT_EQ(captured.type_name, "outer::QualifiedError");
  ExpectRoundTripAs<outer::QualifiedError>(captured, "q");
}

TEST(RegisteredTypes, InsideNamespace) {
  CapturedException captured = CaptureThrown(ns::NsError("in ns"));
  EXPECT_EQ(captured.type_name, "NsError");
  ExpectRoundTripAs<ns::NsError>(captured, "in ns");

  CapturedException plain = CaptureThrown(ns::PlainError("plain"));
  EXPECT_EQ(plain.type_name, "PlainError");
  ExpectRoundTripAs<ns::PlainError>(plain, "plain");
}

TEST(RegisteredTypes, ConstructorThatThrowsFallsBackToRemoteError) {
  std::exception_ptr rebuilt = RebuildException("PickyError", "refuse", Info());
  try {
    std::rethrow_exception(rebuilt);
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "PickyError");
    EXPECT_STREQ(e.what(), "refuse");
  }
  ExpectRoundTripAs<PickyError>(CaptureThrown(PickyError("ok")), "ok");
}

// Rebuilds `captured` and checks that it comes back as a RemoteError carrying
// `type_name` and `what`.
void ExpectRemoteError(const CapturedException& captured,
                       const std::string& type_name, const std::string& what) {
  EXPECT_EQ(captured.type_name, type_name);
  EXPECT_EQ(captured.message, what);
  std::exception_ptr rebuilt =
      RebuildException(captured.type_name, captured.message, Info());
  try {
    std::rethrow_exception(rebuilt);
  } catch (const RemoteError& e) {
    EXPECT_EQ(typeid(e), typeid(WithRemoteTraceback<RemoteError>));
    EXPECT_EQ(e.type_name(), type_name);
    EXPECT_EQ(std::string(e.what()), what);
    const RemoteTraceback* tb = GetRemoteTraceback(e);
    ASSERT_NE(tb, nullptr);
    EXPECT_EQ(tb->type_name(), type_name);
    EXPECT_EQ(tb->pid(), 321);
  } catch (...) {
    ADD_FAILURE() << type_name << " did not come back as RemoteError";
  }
}

TEST(UnregisteredTypes, SubclassOfStandardTypeIsRemoteError) {
  ExpectRemoteError(CaptureThrown(unreg::MyErr("mine")), "unreg::MyErr",
                    "mine");
}

TEST(UnregisteredTypes, NonStdExceptions) {
  ExpectRemoteError(CaptureThrown(42), "int",
                    "task threw a non-std::exception of type int");
  ExpectRemoteError(CaptureThrown(std::string("text")), "std::string",
                    "task threw a non-std::exception of type std::string: text");
  const char* literal = "literal";
  ExpectRemoteError(
      CaptureThrown(literal), "char const*",
      "task threw a non-std::exception of type char const*: literal");
  struct Local {};
  CapturedException local = CaptureThrown(Local());
  EXPECT_THAT(local.type_name, HasSubstr("Local"));
}

TEST(UnregisteredTypes, UnknownNameIsRemoteError) {
  CapturedException captured{"no::SuchType", "msg"};
  ExpectRemoteError(captured, "no::SuchType", "msg");
}

TEST(Capture, ExceptionRebuiltFromAnotherWorkerKeepsItsName) {
  // A task that used a pool of its own and let its exception escape.
  std::exception_ptr inner = RebuildException("GlobalError", "deep", Info());
  CapturedException captured;
  try {
    std::rethrow_exception(inner);
  } catch (...) {
    captured = CaptureCurrentException();
  }
  EXPECT_EQ(captured.type_name, "GlobalError");
  EXPECT_EQ(captured.message, "deep");

  inner = RebuildException("unreg::Foo", "deeper", Info());
  try {
    std::rethrow_exception(inner);
  } catch (...) {
    captured = CaptureCurrentException();
  }
  EXPECT_EQ(captured.type_name, "unreg::Foo");
  EXPECT_EQ(captured.message, "deeper");
}

TEST(Capture, OutsideACatchBlock) {
  CapturedException captured = CaptureCurrentException();
  EXPECT_EQ(captured.type_name, "unknown");
}

TEST(Register, Conflicts) {
  // Same type, same name: fine.
  EXPECT_TRUE(RegisterException(typeid(GlobalError), "GlobalError",
                                &exception_internal::Make<GlobalError>));
  // Same type, another name: refused; the first stays.
  EXPECT_FALSE(RegisterException(typeid(GlobalError), "Renamed",
                                 &exception_internal::Make<GlobalError>));
  EXPECT_EQ(CaptureThrown(GlobalError("x")).type_name, "GlobalError");
  // Another type, a taken name: refused.
  EXPECT_FALSE(RegisterException(typeid(unreg::MyErr), "GlobalError",
                                 &exception_internal::Make<unreg::MyErr>));
  EXPECT_EQ(CaptureThrown(unreg::MyErr("x")).type_name, "unreg::MyErr");
}

TEST(Register, ConcurrentWithCaptureAndRebuild) {
  struct LateError : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&failures, t] {
      for (int i = 0; i < 200; ++i) {
        if (t == 0 && i == 100) {
          exception_internal::Register<LateError>("LateError");
        }
        CapturedException c = CaptureThrown(GlobalError("g"));
        if (c.type_name != "GlobalError") ++failures;
        std::exception_ptr e = RebuildException(c.type_name, c.message, {});
        if (GetRemoteTraceback(e) == nullptr) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(CaptureThrown(LateError("late")).type_name, "LateError");
}

ABSL_ATTRIBUTE_NOINLINE std::string StackOfThisFunction(int skip_frames) {
  std::string stack = CurrentStackTrace(skip_frames);
  return stack;
}

TEST(CurrentStackTrace, ListsFramesInnermostFirst) {
  std::string stack = StackOfThisFunction(0);
  EXPECT_THAT(stack, ::testing::StartsWith("0x"));
  EXPECT_THAT(stack, HasSubstr(" procpool::(anonymous namespace)::"
                               "StackOfThisFunction()\n"));
  EXPECT_THAT(stack, ::testing::Not(HasSubstr("procpool::CurrentStackTrace")));
  EXPECT_LT(stack.find("StackOfThisFunction"), stack.find("TestBody"));

  std::string skipped = StackOfThisFunction(1);
  EXPECT_THAT(skipped, ::testing::Not(HasSubstr("StackOfThisFunction")));
  EXPECT_THAT(skipped, HasSubstr("TestBody"));
}

}  // namespace
}  // namespace procpool
