#pragma once

#include <cstddef>
#include <string>

#include "HttpParser.h"

namespace orch {

class ResponseCache;
class SimulatedWork;
struct ThreadStats;

// What processRequests() did with one range of input.
struct ProcessResult {
  size_t consumed = 0;        // bytes the caller may drop
  bool completed = false;     // at least one request was answered with a 200
  bool lastResponse = false;  // an error or "Connection: close" was answered: no more requests
  bool linger = false;        // and input may follow it (read it before closing: no RST)
};

// The transport-independent half of a connection, shared by Connection
// (epoll) and UringConnection (io_uring): parses every complete request in
// [data, data+len) and appends its response (and any "100 Continue") to
// *out, counting requests in stats. Stops after the last response, or once
// `budget` bytes or more were appended (the caller's room below its
// back-pressure mark). Each request first costs `work` (--work-us).
ProcessResult processRequests(HttpParser& parser, const ResponseCache& responses, const SimulatedWork& work,
                              ThreadStats& stats,
                              const char* data, size_t len, std::string* out, size_t budget);

}  // namespace orch
