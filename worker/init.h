// procpool::Init: the entry point that turns a process started by procpool
// into a worker or a fork server.
//
// Example:
//   int main(int argc, char** argv) {
//     procpool::Init(argc, argv);  // a worker never returns from here
//     ...
//   }
#ifndef PROCPOOL_WORKER_INIT_H_
#define PROCPOOL_WORKER_INIT_H_

namespace procpool {

// In a worker or fork server started by procpool (argv[1] is procpool's
// internal role flag): serves, then exits the process; never returns. With
// --procpool_cluster=NAME on the command line: runs that cluster's bootstrap
// (//cluster:mpi for "mpi"), which returns on the parent rank only and makes
// the cluster's workers its pools' default; other ranks serve and exit there.
// In every other process: returns at once and leaves argv untouched. Call it
// first in main(), before starting threads.
void Init(int argc, char** argv);

// True if argv names one of procpool's internal roles.
bool IsInternalRole(int argc, char** argv);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_INIT_H_
