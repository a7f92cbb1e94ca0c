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
  push @0 (chunk :Data, last :Bool) -> ();
}
