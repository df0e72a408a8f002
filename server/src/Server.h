#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "ConnectionLimit.h"
#include "Options.h"
#include "Socket.h"
#include "orch/NonCopyable.h"

namespace orch {

class Acceptor;
class Channel;
class EventLoop;
class EventLoopThreadPool;
class Worker;

// The whole server: the main thread's EventLoop (signals; in main-sub also the
// Acceptor), the IO thread pool and one Worker per IO thread.
//
//  reuseport: every Worker owns a listener bound to the same port with
//             SO_REUSEPORT; the kernel spreads connections by 4-tuple hash and
//             the threads never talk to each other.
//  main-sub:  one Acceptor on the main thread hands each accepted fd to the
//             next Worker round-robin through that loop's queue + eventfd.
//
// Owns everything; lives on the main thread. run() is called once.
class Server : NonCopyable {
 public:
  explicit Server(Options options);
  ~Server();

  // Binds (exit code 1 on failure), starts the threads, prints the ready
  // line, serves until SIGTERM/SIGINT, stops every thread cleanly and prints
  // the per-thread counters. Returns the process exit code.
  int run();

 private:
  bool openListeners(std::vector<UniqueFd>* listeners, int* port);
  void handOff(int fd);  // main-sub: acceptor callback, main thread
  void printStats() const;

  const Options options_;
  ConnectionLimit limit_{options_.maxConnections};  // every thread's admission
  int port_ = 0;
  std::unique_ptr<EventLoop> mainLoop_;
  UniqueFd signalFd_;
  std::unique_ptr<Channel> signalChannel_;
  std::unique_ptr<EventLoopThreadPool> pool_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Acceptor> acceptor_;  // main-sub only
  uint64_t acceptorAccepted_ = 0;
  size_t next_ = 0;
};

}  // namespace orch
