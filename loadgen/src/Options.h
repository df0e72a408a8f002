#pragma once

#include <string>
#include <vector>

#include "orch/Args.h"

namespace orchload {

// Command-line options, validated once on the main thread and read-only afterwards.
struct Options {
  std::vector<std::string> urls;      // http://host[:port][/path], one or more
  int threads = 1;
  int connections = 10;               // total, split over threads
  double rate = 0;                    // total requests/s; 0 = closed loop
  int pipeline = 1;                   // max requests in flight per connection
  double durationS = 10;
  double warmupS = 0;
  double timeoutS = 5;                // a request unanswered this long is a timeout
  double startAt = 0;                 // absolute epoch seconds; 0 = now
  std::vector<int> cpus;              // thread i pinned to cpus[i % size]
  std::string method = "GET";
  std::vector<std::string> headers;   // "Name: value"
  std::string body;
  bool http10 = false;
  bool close = false;                 // one request per connection (Connection: close)
  double minSleepUs = 30;             // open loop: shortest sleep; what falls due meanwhile is batched

  bool openLoop() const { return rate > 0; }
  bool keepAlive() const { return !close; }
};

// Parses argv (orch/Args.h's style, as the server's); on kError *error says what is wrong.
orch::ParseOutcome parseOptions(int argc, char** argv, Options* out, std::string* error);
std::string usage();

extern const char* const kVersion;

}  // namespace orchload
