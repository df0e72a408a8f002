#pragma once

#include <memory>
#include <vector>

#include "Callbacks.h"
#include "orch/NonCopyable.h"

namespace orch {

class EventLoop;
class EventLoopThread;

// N IO threads, each with its own EventLoop; thread i is pinned to
// cpus[i % cpus.size()] (unpinned when cpus is empty). Owns the threads;
// the loops belong to their threads. All methods: owning thread only.
class EventLoopThreadPool : NonCopyable {
 public:
  EventLoopThreadPool(int numThreads, std::vector<int> cpus);
  ~EventLoopThreadPool();  // quits any loop still running and joins

  // Starts every thread; init runs on each loop thread before it loops.
  void start(const ThreadInitCallback& init);
  // Round-robin choice for main-sub hand-off.
  EventLoop* getNextLoop();
  EventLoop* loop(size_t i) const { return loops_[i]; }
  size_t size() const { return loops_.size(); }
  const EventLoopThread& thread(size_t i) const { return *threads_[i]; }
  void joinAll();

 private:
  const int numThreads_;
  const std::vector<int> cpus_;
  std::vector<std::unique_ptr<EventLoopThread>> threads_;
  std::vector<EventLoop*> loops_;
  size_t next_ = 0;
};

}  // namespace orch
