# The "capnp" transport's RPC interface (see capnp_transport.h).
#
# Each side of a channel exports one FrameSink as its bootstrap capability and
# pushes its frames into the other side's. A frame travels as one or more
# chunks (at most kCapnpChunkSize bytes each), in order, the last one with
# last = true; calls on one capability are delivered in order (E-order), so
# chunks of consecutive frames never interleave.
@0xc563b99598a8d502;

$import "/capnp/c++.capnp".namespace("procpool::capnp_transport");

interface FrameSink {
  # Appends `chunk` to the frame being received; with `last` the frame is
  # complete. Returns once the receiver has queued the bytes (not when its
  # user took them).
  push @0 (chunk :Data, last :Bool, frameSize :UInt64) -> ();
  # frameSize: the whole frame's length, on its first chunk (0: unknown), so
  # that the receiver reserves it once instead of growing it chunk by chunk.

  ping @1 () -> ();
  # A heartbeat: answered at once by the receiver's event loop. A remote
  # channel (remote.h) pings its peer every heartbeat interval and counts any
  # message from it as a sign of life. Local channels never ping.
}

# What else a worker's interface needs rides in the frames pushed above
# (serialization/wire.h), so that every transport carries the same protocol:
# several calls in flight: push() never waits for the previous frame's
# answer, and each Call frame carries its work id; results streamed back: the
# worker pushes one Result frame per Call as soon as it is done; orderly
# shutdown: a Shutdown frame, after which the worker exits and closes.
