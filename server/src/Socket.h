#pragma once

#include <string>

#include "orch/UniqueFd.h"

namespace orch {

// Creates a non-blocking listening TCP socket on bindAddress:port (IPv4 or
// IPv6 literal). reusePort sets SO_REUSEPORT before bind. On failure returns
// an invalid fd and a readable reason in *error.
UniqueFd createListenSocket(const std::string& bindAddress, int port, int backlog, bool reusePort,
                            std::string* error);

// The port a bound socket got (useful after binding port 0); -1 on error.
int boundPort(int fd);

}  // namespace orch
