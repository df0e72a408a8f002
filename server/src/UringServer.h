#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "ConnectionLimit.h"
#include "Options.h"
#include "orch/NonCopyable.h"

namespace orch {

class UringWorker;

// --arch uring: shared-nothing like reuseport, with io_uring instead of
// epoll. Every IO thread owns a UringWorker: its own ring and its own
// SO_REUSEPORT listener. The main thread only checks the kernel, binds,
// starts the threads, prints the ready line, waits for SIGTERM/SIGINT
// (sigwaitinfo: nothing to poll), stops the threads and prints the stats.
//
// Owns the workers and their threads; lives on the main thread.
class UringServer : NonCopyable {
 public:
  explicit UringServer(const Options& options);
  ~UringServer();

  // Same contract as Server::run: exit code 1 when the kernel lacks what
  // the architecture needs (one line on stderr) or binding fails.
  int run();

 private:
  void printStats(int port) const;

  const Options& options_;
  ConnectionLimit limit_{options_.maxConnections};  // every thread's admission
  std::vector<std::unique_ptr<UringWorker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace orch
