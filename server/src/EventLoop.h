#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "Callbacks.h"
#include "Socket.h"
#include "orch/NonCopyable.h"

namespace orch {

class Channel;
class Poller;

// One loop per thread, enforced: the thread that constructs an EventLoop is the
// only one that may run it and touch its channels (assertInLoopThread()).
// Thread-safe members: quit(), runInLoop(), queueInLoop(), isInLoopThread().
// Owns its Poller and its wake-up eventfd; does not own the Channels.
class EventLoop : NonCopyable {
 public:
  EventLoop();
  ~EventLoop();

  // Runs until quit(). Loop thread only.
  void loop();
  // Thread-safe; the loop exits after finishing its current iteration.
  void quit();

  // Runs f now if called on the loop thread, otherwise queues it.
  void runInLoop(Functor f);
  // Queues f to run after the current batch of events. Wakes the loop with
  // the eventfd only if no wake-up is already pending, so a burst of
  // hand-offs costs one eventfd write.
  void queueInLoop(Functor f);

  // Runs f on this thread after the current batch of events, with no
  // wake-up syscall. Loop thread only (e.g. freeing a closed connection that
  // a later event of the same batch may still reference).
  void deferInLoop(Functor f);

  // Periodic task, first run intervalMs from now. Loop thread only.
  void runEvery(int64_t intervalMs, Functor f);
  // One-shot task; returns an id for cancelTimer(). Loop thread only.
  uint64_t runAfter(int64_t delayMs, Functor f);
  // Drops a pending timer (no-op if it already ran). Loop thread only.
  void cancelTimer(uint64_t id);

  // Monotonic milliseconds, read once per wake-up (cheap vDSO coarse clock).
  int64_t nowMs() const { return nowMs_; }

  void updateChannel(Channel* channel);
  void removeChannel(Channel* channel);

  bool isInLoopThread() const;
  void assertInLoopThread() const;
  pid_t tid() const { return tid_; }

  static int64_t monotonicMs();

 private:
  struct Timer {
    int64_t dueMs;
    int64_t intervalMs;  // 0: one-shot
    Functor f;
    uint64_t id;
  };

  void handleWakeup();
  void wakeup();
  void doPendingFunctors();
  void runDueTimers();
  void runDeferred();
  int pollTimeoutMs() const;

  const pid_t tid_;
  std::atomic<bool> quit_{false};
  std::unique_ptr<Poller> poller_;
  UniqueFd wakeupFd_;
  std::unique_ptr<Channel> wakeupChannel_;
  std::vector<Channel*> active_;
  std::vector<Timer> timers_;
  uint64_t nextTimerId_ = 1;
  std::vector<Functor> deferred_;
  int64_t nowMs_;

  std::mutex mutex_;
  std::vector<Functor> pending_;  // guarded by mutex_
  // True while an eventfd wake-up is in flight; avoids redundant writes.
  std::atomic<bool> wakeupPending_{false};
};

// The calling thread's kernel tid, cached per thread.
pid_t currentTid();

}  // namespace orch
