#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ConnectionLimit.h"
#include "ConnectionTable.h"
#include "ResponseCache.h"
#include "SimulatedWork.h"
#include "Socket.h"
#include "ThreadStats.h"
#include "UringRing.h"
#include "orch/NonCopyable.h"

namespace orch {

class UringConnection;
struct Options;

// One IO thread of the uring architecture, sharing nothing with the others:
// its own io_uring (UringRing), its own SO_REUSEPORT listener with a
// multishot accept, its connections (unique_ptr), response cache and
// counters. No epoll: the thread waits in io_uring_enter only.
//
// The loop: queue the sends of every connection with new output, then one
// io_uring_submit_and_wait_timeout (submits them and waits for completions,
// or for the next timer tick), then handle every completion in the CQ.
//
// Created on the main thread; init() and run() on the IO thread; stop() from
// any thread (an eventfd the ring reads); stats(), cpu(), tid() after join.
class UringWorker : NonCopyable {
 public:
  // What a completion's user_data says, in its low 3 bits (the rest is the
  // UringConnection's address, or zero).
  enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kWake = 4, kIgnore = 5, kOpMask = 7 };
  static uint64_t tag(const void* p, Op op) { return reinterpret_cast<uint64_t>(p) | op; }

  UringWorker(const Options& options, UniqueFd listenFd, ConnectionLimit* limit, int cpu);
  ~UringWorker();

  bool init(std::string* error);  // IO thread: ring, accept, wake-up; before run()
  void run();                     // IO thread: serves until stop()
  void stop();                    // any thread

  // Used by UringConnection (IO thread).
  UringRing& ring() { return *ring_; }
  const Options& options() const { return options_; }
  const ResponseCache& responses() const { return responses_; }
  const SimulatedWork& work() const { return work_; }
  ThreadStats& stats() { return stats_; }
  int64_t nowMs() const { return nowMs_; }
  void scheduleFlush(UringConnection* conn);
  void connectionClosed(UringConnection* conn);  // out of the table; kept while ops are in flight
  void release(UringConnection* conn);           // its last operation completed

  const ThreadStats& stats() const { return stats_; }
  int cpu() const { return cpu_; }
  int tid() const { return tid_; }

 private:
  void armAccept();
  void armWake();
  void onAccept(const io_uring_cqe* cqe);
  void handle(const io_uring_cqe* cqe);
  void runFlushes();
  void onTick();
  void refuseOne();  // EMFILE: accept and close with the reserve fd
  void updateNow();

  const Options& options_;
  ConnectionLimit* const limit_;
  const int cpu_;
  int tid_ = 0;
  // Exited at the end of run(), on this thread, before the connections (and
  // the send buffers the kernel may still read) are freed.
  std::unique_ptr<UringRing> ring_;
  UniqueFd listenFd_;
  UniqueFd reserveFd_;  // spare fd for EMFILE
  UniqueFd wakeFd_;     // eventfd: stop()
  uint64_t wakeValue_ = 0;
  std::atomic<bool> stopping_{false};
  bool acceptArmed_ = false;
  int64_t acceptPausedUntilMs_ = 0;  // 0: not paused
  int64_t nowMs_ = 0;
  int64_t tickMs_ = 250;
  ResponseCache responses_;
  SimulatedWork work_;
  ThreadStats stats_;
  ConnectionTable<UringConnection> connections_;
  // Closed, with an operation still in flight.
  std::unordered_map<UringConnection*, std::unique_ptr<UringConnection>> zombies_;
  // Done with; freed at the start of the next loop iteration.
  std::vector<std::unique_ptr<UringConnection>> graveyard_;
  std::vector<UringConnection*> flushList_;
};

}  // namespace orch
