// Throw-site stacks: while a worker runs a task, every C++ throw records the
// stack where it was thrown, so that a task's exception comes back with the
// place it was thrown, not only the place it was caught.
//
// It interposes __cxa_throw (the C++ runtime's throw entry point) for the
// whole program; outside a task (and in the parent) the cost of a throw grows
// by one thread-local test.
#ifndef PROCPOOL_WORKER_CHILD_THROW_SITE_H_
#define PROCPOOL_WORKER_CHILD_THROW_SITE_H_

#include <string>

namespace procpool {

// Turns recording on or off for this thread (the worker's, around a task).
void RecordThrowSites(bool on);

// The symbolized stack of this thread's most recent throw while recording
// was on ("" if none), innermost frame first; clears it.
std::string TakeThrowSiteStack();

}  // namespace procpool

#endif  // PROCPOOL_WORKER_CHILD_THROW_SITE_H_
