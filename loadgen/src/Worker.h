#pragma once

#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "Connection.h"
#include "Options.h"
#include "Poller.h"
#include "Stats.h"
#include "Target.h"
#include "orch/NonCopyable.h"
#include "orch/UniqueFd.h"

namespace orchload {

// The run's timeline in CLOCK_MONOTONIC ns, fixed by the main thread before workers start.
// stopNs is the only field written afterwards (by the main thread on SIGINT/SIGTERM).
struct Timeline {
  int64_t startNs = 0;         // warm-up begins (from --start-at)
  int64_t measureStartNs = 0;  // warm-up ends, the window opens
  int64_t measureEndNs = 0;    // the window closes
  std::atomic<int64_t> stopNs{INT64_MAX};
  // The drain after the window (requests in flight get up to --timeout to be answered) ends
  // early when the main thread sets this (a signal during the drain).
  std::atomic<int64_t> drainStopNs{INT64_MAX};
  std::atomic<int> finished{0};  // workers done, drain included
};

// One thread, one epoll loop, its own connections and Stats: nothing on the hot path is
// shared with other workers. The main thread constructs it, calls start(), may call
// wake() (thread-safe) after setting Timeline::stopNs, then join() and reads stats().
// Open loop: this worker owns every T-th slot of the global schedule
// (slot j is due at startNs + j / rate; worker i sends slots i, i+T, i+2T, ...), so the
// merged stream is evenly spaced. A due request with no free connection waits in the
// queue, which is just the range of slot numbers [sent, due): bounded by nothing but
// the run, and never dropped.
// Every request intended in the window gets a latency: answered; lost to a timeout (at
// least --timeout, from the actual send, after its intended time) or to its connection
// (intended time to when that was known); still in flight at the window's end: drained
// (nothing more is sent; answers are read until each request's timeout), then timed out;
// still queued at the end: intended time to the drain's end.
class Worker : orch::NonCopyable {
 public:
  Worker(int id, int threads, int connections, int cpu, const Options& options,
         const std::vector<Target>& targets, Timeline* timeline);
  ~Worker();

  void start();
  void join();
  void wake();  // any thread
  const Stats& stats() const { return stats_; }  // after join()

  // Called by this worker's connections, on its thread.
  Poller* poller() { return &poller_; }
  char* readBuffer() { return readBuffer_.data(); }
  size_t readBufferSize() const { return readBuffer_.size(); }
  void onConnected(Connection* c, int64_t now);
  void onConnectFailed(Connection* c, int64_t now);
  void onResponse(Connection* c, const InFlight& r, int status, int64_t now);
  void onLost(const InFlight& r, ErrorKind kind, int64_t now);
  void onConnectionDown(Connection* c, ErrorKind kind, int64_t now);
  void onClosedCleanly(Connection* c, int64_t now);

 private:
  void run();
  void pin();
  void dispatch(int64_t now);            // open loop: send what is due
  void fill(Connection* c, int64_t now);  // closed loop: keep `pipeline` in flight
  void tick(int64_t now);                 // timeouts and reconnects (none while draining)
  int64_t drain(int64_t end);             // after the window; returns when it ended
  void finish(int64_t end, int64_t drainEnd, bool cut);
  void pollOnce(int64_t timeoutNs);
  // One request of the window into the three histograms; service time at least minServiceNs.
  void recordLatency(const InFlight& r, int64_t now, int64_t minServiceNs = 0);
  void makeFree(Connection* c, int64_t now);
  Connection* popFree();
  int64_t slotTime(int64_t k) const;
  int64_t dueCount(int64_t now) const;
  bool inWindow(int64_t t) const { return t >= tl_->measureStartNs && t < tl_->measureEndNs; }
  bool started(int64_t now) const { return now >= tl_->startNs; }

  const int id_;
  const int threads_;
  const int cpu_;
  const Options& options_;
  Timeline* const tl_;
  const bool open_;
  const double periodNs_;  // between global slots (open loop)
  const int64_t timeoutNs_;
  const int64_t minSleepNs_;
  Poller poller_;
  orch::UniqueFd wakeFd_;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::deque<Connection*> free_;  // FIFO: load spreads evenly over connections and targets
  std::vector<char> readBuffer_;
  int64_t sentSlots_ = 0;    // next own slot to send
  int64_t queuedUpTo_ = 0;   // own slots below this were counted as queued
  bool closedStarted_ = false;
  bool draining_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace orchload
