#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "Options.h"

namespace orchload {

// One server address and the pre-built bytes of the request sent to it. Built once on
// the main thread, then only read by workers (safe to share without locks).
struct Target {
  std::string url;
  sockaddr_storage addr{};
  socklen_t addrLen = 0;
  std::string request;  // the exact bytes of one request
  bool head = false;    // HEAD: responses carry no body
};

// Resolves every URL and builds its request; on error prints why and returns false.
bool buildTargets(const Options& options, std::vector<Target>* out);

}  // namespace orchload
