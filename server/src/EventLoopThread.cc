#include "EventLoopThread.h"

#include <pthread.h>
#include <sched.h>

#include <cstdio>
#include <cstring>

#include "EventLoop.h"

namespace orch {

bool pinCurrentThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set) == 0;
}

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
  if (cpu_ >= 0 && !pinCurrentThread(cpu_)) {
    std::fprintf(stderr, "warning: cannot pin thread to cpu %d: %s\n", cpu_, std::strerror(errno));
  }
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
