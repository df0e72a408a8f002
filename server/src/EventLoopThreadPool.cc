#include "EventLoopThreadPool.h"

#include "EventLoop.h"
#include "EventLoopThread.h"

namespace orch {

EventLoopThreadPool::EventLoopThreadPool(int numThreads, std::vector<int> cpus)
    : numThreads_(numThreads), cpus_(std::move(cpus)) {}

EventLoopThreadPool::~EventLoopThreadPool() = default;

void EventLoopThreadPool::start(const ThreadInitCallback& init) {
  for (int i = 0; i < numThreads_; ++i) {
    int cpu = cpus_.empty() ? -1 : cpus_[static_cast<size_t>(i) % cpus_.size()];
    threads_.push_back(std::make_unique<EventLoopThread>(cpu, init));
    loops_.push_back(threads_.back()->start());
  }
}

EventLoop* EventLoopThreadPool::getNextLoop() {
  EventLoop* loop = loops_[next_];
  next_ = (next_ + 1) % loops_.size();
  return loop;
}

void EventLoopThreadPool::joinAll() {
  for (auto& t : threads_) t->join();
}

}  // namespace orch
