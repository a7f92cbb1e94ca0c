#include "core/start_method.h"

namespace procpool {

const char* StartMethodName(StartMethod method) {
  switch (method) {
    case StartMethod::kFork:
      return "fork";
    case StartMethod::kForkServer:
      return "forkserver";
    case StartMethod::kSpawn:
      return "spawn";
  }
  return "unknown";
}

}  // namespace procpool
