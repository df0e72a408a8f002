#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "Callbacks.h"
#include "orch/NonCopyable.h"

namespace orch {

class EventLoop;

// A thread running one EventLoop, optionally pinned to a CPU. The EventLoop
// lives on the thread's stack; start() returns a pointer to it that stays
// valid until the loop quits. The destructor quits the loop (if still
// running) and joins. start()/join() are for the owning thread only.
class EventLoopThread : NonCopyable {
 public:
  // cpu < 0: not pinned. init runs on the new thread before looping.
  EventLoopThread(int cpu, ThreadInitCallback init);
  ~EventLoopThread();

  EventLoop* start();  // blocks until the loop exists
  void join();         // waits for the thread; the loop must have been told to quit

  int cpu() const { return cpu_; }
  pid_t tid() const { return tid_; }

 private:
  void threadFunc();

  const int cpu_;
  ThreadInitCallback init_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cond_;
  EventLoop* loop_ = nullptr;  // guarded by mutex_
  pid_t tid_ = 0;              // written before start() returns
  bool exited_ = false;        // guarded by mutex_
};

}  // namespace orch
