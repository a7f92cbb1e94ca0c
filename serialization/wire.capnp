# The wire protocol between the parent and a worker (see wire.h).
#
# Every frame on a channel is one Message. The parent sends config (first),
# then calls and finally shutdown; the worker answers hello (right after it
# reads config), then one result per call, or initFailed when its initializer
# throws, or fatal before it exits on a protocol error. Task arguments and results are opaque blobs encoded by codec.h.
@0x8f9342dfeade56e1;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("procpool::wire::schema");

struct TaskSignature {
  name @0 :Text;
  # The registered name (PROCPOOL_TASK's argument).
  signature @1 :Text;
  # "R(P1,P2,...)" in codec signatures; two binaries agree on a task only if
  # these are equal.
}

struct CallSpec {
  task @0 :Text;
  args @1 :Data;
}

struct Config {
  protocolVersion @0 :UInt32;
  hasInitializer @1 :Bool;
  initializer @2 :CallSpec;
  maxTasks @3 :Int64;
  # 0: unlimited.
  heartbeatIntervalMs @4 :UInt32;
  # 0: no heartbeats.
  memoryLimitBytes @5 :Int64;
  # RLIMIT_AS for the worker; 0: none.
  keepFreedMemory @6 :Bool;
  # The worker's heap keeps what it frees until the worker is idle.
}

struct Hello {
  protocolVersion @0 :UInt32;
  pid @1 :Int32;
  fingerprint @2 :UInt64;
  # Hash over every (name, signature) the worker binary registered.
  tasks @3 :List(TaskSignature);
}

struct Call {
  workId @0 :UInt64;
  task @1 :Text;
  args @2 :List(Data);
  # One encoded argument tuple per element: one for Submit, a chunk for Map.
  # Empty when the call is packed (packedArgs/argEnds; see wire.h).
  packedArgs @3 :Data;
  # Protocol 2, when every element is small: the elements' encodings, one
  # after the other.
  argEnds @4 :List(UInt32);
  # Set when packed: one per element, where its bytes in packedArgs end
  # (non-decreasing; the last one is packedArgs' size).
  descriptors @5 :UInt32;
  # Protocol 4: how many descriptors came beside the frame (the memfds of the
  # shared arrays in the arguments, by index; shared_array/transfer.h).
  heldArrays @6 :List(UInt32);
  # Protocol 5: the indices (increasing) of the arrays whose memfd did not
  # come because the receiver holds them already; the descriptors are the
  # other arrays', in index order.
  forgetArrays @7 :List(ArrayId);
  # Protocol 5: arrays the worker drops from its cache before this call (the
  # parent let them go, or the worker's cache is over its bounds).
  argTails @8 :List(Tail);
  # Protocol 7: the rest of each element's arguments too big for one Data
  # (args holds their first piece; see Tail).
}

struct Tail {
  # The bytes of one string after its first piece, for a string longer than
  # one Data can hold (2^29 - 1 bytes; wire.h's kMaxPieceBytes): its first
  # piece is where the string belongs, the rest follow here in order.
  index @0 :UInt32;
  # Which string: the element's index (Call.args, Result.outcomes).
  pieces @1 :List(Data);
}

struct ArrayId {
  pid @0 :UInt32;
  serial @1 :UInt64;
  nonce @2 :UInt64;
}

struct ExceptionInfo {
  typeName @0 :Text;
  message @1 :Data;
  traceback @2 :Data;
}

struct Outcome {
  union {
    value @0 :Data;
    exception @1 :ExceptionInfo;
  }
}

struct Failure {
  index @0 :UInt32;
  exception @1 :ExceptionInfo;
}

struct Result {
  workId @0 :UInt64;
  outcomes @1 :List(Outcome);
  # Empty when the result is packed (see wire.h).
  packedValues @2 :Data;
  # Protocol 2, when every value is small: the values, one after the other
  # (a failed element has none).
  valueEnds @3 :List(UInt32);
  # Set when packed: one per element, where its value ends in packedValues.
  failures @4 :List(Failure);
  # When packed: the failed elements, by increasing index.
  descriptors @5 :UInt32;
  # As Call's: the memfds of the shared arrays in the values.
  heldArrays @6 :List(UInt32);
  # As Call's: arrays the parent holds already (the Call brought them).
  outputWrites @7 :Data;
  # Protocol 6: the bytes the call's tasks changed in the copies of output
  # arrays that came by value (shared_array/output_writes.h's encoding).
  valueTails @8 :List(Tail);
  # Protocol 7: the rest of each value too big for one Data (outcomes[index]
  # holds its first piece).
  outputWritesTail @9 :List(Data);
  # Protocol 7: the rest of outputWrites, when too big for one Data.
}

struct Message {
  union {
    config @0 :Config;
    hello @1 :Hello;
    call @2 :Call;
    result @3 :Result;
    initFailed @4 :ExceptionInfo;
    shutdown @5 :Void;
    fatal @6 :ExceptionInfo;
    # The worker hit a protocol error (e.g. undecodable call) and exits.
  }
}
