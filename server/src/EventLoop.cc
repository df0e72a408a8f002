#include "EventLoop.h"

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "Channel.h"
#include "Poller.h"

namespace orch {

namespace {
thread_local EventLoop* t_loopInThisThread = nullptr;
thread_local pid_t t_tid = 0;
}  // namespace

pid_t currentTid() {
  if (t_tid == 0) t_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  return t_tid;
}

int64_t EventLoop::monotonicMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

EventLoop::EventLoop()
    : tid_(currentTid()),
      poller_(Poller::newDefaultPoller()),
      wakeupFd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      nowMs_(monotonicMs()) {
  if (t_loopInThisThread != nullptr) {
    std::fprintf(stderr, "fatal: a second EventLoop in thread %d\n", tid_);
    std::abort();
  }
  if (!wakeupFd_.valid()) {
    std::perror("eventfd");
    std::abort();
  }
  t_loopInThisThread = this;
  wakeupChannel_ = std::make_unique<Channel>(this, wakeupFd_.get());
  wakeupChannel_->setReadCallback([this] { handleWakeup(); });
  wakeupChannel_->enableReading();
}

EventLoop::~EventLoop() {
  wakeupChannel_->remove();
  t_loopInThisThread = nullptr;
}

void EventLoop::loop() {
  assertInLoopThread();
  while (!quit_.load(std::memory_order_acquire)) {
    active_.clear();
    poller_->poll(pollTimeoutMs(), &active_);
    nowMs_ = monotonicMs();
    for (Channel* ch : active_) ch->handleEvent();
    doPendingFunctors();
    if (!timers_.empty()) runDueTimers();
    if (!deferred_.empty()) runDeferred();
  }
}

void EventLoop::deferInLoop(Functor f) {
  assertInLoopThread();
  deferred_.push_back(std::move(f));
}

void EventLoop::runDeferred() {
  std::vector<Functor> functors;
  functors.swap(deferred_);
  for (Functor& f : functors) f();
}

void EventLoop::quit() {
  quit_.store(true, std::memory_order_release);
  if (!isInLoopThread()) wakeup();
}

void EventLoop::runInLoop(Functor f) {
  if (isInLoopThread()) {
    f();
  } else {
    queueInLoop(std::move(f));
  }
}

void EventLoop::queueInLoop(Functor f) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(f));
  }
  if (!wakeupPending_.exchange(true, std::memory_order_acq_rel)) wakeup();
}

void EventLoop::runEvery(int64_t intervalMs, Functor f) {
  assertInLoopThread();
  intervalMs = std::max<int64_t>(intervalMs, 1);
  timers_.push_back(Timer{monotonicMs() + intervalMs, intervalMs, std::move(f), nextTimerId_++});
}

uint64_t EventLoop::runAfter(int64_t delayMs, Functor f) {
  assertInLoopThread();
  uint64_t id = nextTimerId_++;
  timers_.push_back(Timer{monotonicMs() + std::max<int64_t>(delayMs, 0), 0, std::move(f), id});
  return id;
}

void EventLoop::cancelTimer(uint64_t id) {
  assertInLoopThread();
  std::erase_if(timers_, [id](const Timer& t) { return t.id == id; });
}

int EventLoop::pollTimeoutMs() const {
  if (!deferred_.empty()) return 0;  // work is waiting: just collect events
  if (timers_.empty()) return -1;
  int64_t due = timers_.front().dueMs;
  for (const Timer& t : timers_) due = std::min(due, t.dueMs);
  // The coarse clock may lag the precise one by a tick; +1 avoids waking early
  // and spinning on a timer that is "not yet" due.
  return static_cast<int>(std::clamp<int64_t>(due - monotonicMs() + 1, 0, 60000));
}

void EventLoop::runDueTimers() {
  // Timers are few (a tick per worker, an occasional accept pause): a linear
  // scan is cheaper than a heap. Callbacks may add timers, so iterate by index
  // and move the callback out before running it.
  for (size_t i = 0; i < timers_.size();) {
    if (timers_[i].dueMs > nowMs_) {
      ++i;
      continue;
    }
    if (timers_[i].intervalMs > 0) {
      timers_[i].dueMs = nowMs_ + timers_[i].intervalMs;
      Functor f = timers_[i].f;  // copy: the vector may reallocate inside f
      f();
      ++i;
    } else {
      Functor f = std::move(timers_[i].f);
      timers_.erase(timers_.begin() + static_cast<std::ptrdiff_t>(i));
      f();
    }
  }
}

void EventLoop::updateChannel(Channel* channel) {
  assertInLoopThread();
  poller_->updateChannel(channel);
}

void EventLoop::removeChannel(Channel* channel) {
  assertInLoopThread();
  poller_->removeChannel(channel);
}

bool EventLoop::isInLoopThread() const { return tid_ == currentTid(); }

void EventLoop::assertInLoopThread() const {
  if (!isInLoopThread()) {
    std::fprintf(stderr, "fatal: EventLoop of thread %d used from thread %d\n", tid_, currentTid());
    std::abort();
  }
}

void EventLoop::wakeup() {
  uint64_t one = 1;
  ssize_t n = ::write(wakeupFd_.get(), &one, sizeof(one));
  (void)n;  // EAGAIN means the counter is already non-zero: still awake.
}

void EventLoop::handleWakeup() {
  uint64_t value = 0;
  ssize_t n = ::read(wakeupFd_.get(), &value, sizeof(value));
  (void)n;
}

void EventLoop::doPendingFunctors() {
  // Clear the flag before taking the queue: a producer that pushes after the
  // swap sees false and writes the eventfd, so nothing is left unserved.
  if (!wakeupPending_.load(std::memory_order_acquire)) return;
  wakeupPending_.store(false, std::memory_order_release);
  std::vector<Functor> functors;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    functors.swap(pending_);
  }
  for (Functor& f : functors) f();
}

}  // namespace orch
