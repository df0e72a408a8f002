#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "orch/NonCopyable.h"

namespace orch {

// --max-connections: the one admission check, whichever thread accepts (the
// main-sub acceptor, a reuseport worker, a uring worker). One count of open
// connections shared by every thread; thread-safe (an atomic).
class ConnectionLimit : NonCopyable {
 public:
  explicit ConnectionLimit(int64_t max) : max_(max) {}  // max <= 0: no limit

  // For a socket just accepted: true if it may stay open (it is then counted
  // until release()); false if it is over the limit, and then it is already
  // closed: a prompt close beats a hang.
  bool admit(int fd) {
    if (max_ <= 0 || live_.fetch_add(1, std::memory_order_relaxed) < max_) return true;
    live_.fetch_sub(1, std::memory_order_relaxed);
    ::close(fd);
    return false;
  }
  // An admitted connection has closed.
  void release() {
    if (max_ > 0) live_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  const int64_t max_;
  std::atomic<int64_t> live_{0};
};

}  // namespace orch
