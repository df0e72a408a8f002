#include "EventLoopThread.h"

#include <pthread.h>
#include <sched.h>

#include <cstdio>
#include <cstring>

#include "EventLoop.h"
#include "orch/Affinity.h"

namespace orch {

EventLoopThread::EventLoopThread(int cpu, ThreadInitCallback init) : cpu_(cpu), init_(std::move(init)) {}

EventLoopThread::~EventLoopThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (loop_ != nullptr) loop_->quit();
  }
  join();
}

EventLoop* EventLoopThread::start() {
  thread_ = std::thread([this] { threadFunc(); });
  std::unique_lock<std::mutex> lock(mutex_);
  cond_.wait(lock, [this] { return loop_ != nullptr || exited_; });
  return loop_;
}

void EventLoopThread::join() {
  if (thread_.joinable()) thread_.join();
}

void EventLoopThread::threadFunc() {
  pinCurrentThreadOrWarn(cpu_, "orchestrate-server", "an IO thread");
  EventLoop loop;
  tid_ = loop.tid();
  if (init_) init_(&loop);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    loop_ = &loop;
  }
  cond_.notify_one();
  loop.loop();
  std::lock_guard<std::mutex> lock(mutex_);
  loop_ = nullptr;
  exited_ = true;
}

}  // namespace orch
