#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "HttpParser.h"
#include "orch/Args.h"

namespace orch {

enum class Arch { kReusePort, kMainSub, kUring };

const char* archName(Arch arch);

// Command-line configuration; immutable once the Server starts.
struct Options {
  Arch arch = Arch::kReusePort;
  int threads = 1;
  std::vector<int> cpus;  // IO thread i on cpus[i % size]; empty: unpinned
  int acceptorCpu = -1;   // main thread (the acceptor in main-sub)
  std::string bind = "127.0.0.1";
  int port = 8000;
  int backlog = 4096;
  std::string body = "hello\n";
  int64_t idleTimeoutMs = 60000;
  int64_t headerTimeoutMs = 10000;
  int64_t maxConnections = 0;  // 0: limited only by RLIMIT_NOFILE
  int64_t workUs = 0;          // busy CPU per request (SimulatedWork)
  HttpLimits limits;
};

// Parses argv (orch/Args.h's style, as the load generator's); on kError *error says what is wrong.
ParseOutcome parseOptions(int argc, char** argv, Options* out, std::string* error);
std::string usage();

}  // namespace orch
