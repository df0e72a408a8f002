#pragma once

#include <sys/epoll.h>

#include <cstdint>

#include "orch/NonCopyable.h"
#include "orch/UniqueFd.h"

namespace orchload {

// One epoll instance, owned by one worker thread and used only there.
// Waits with nanosecond timeouts (epoll_pwait2) so open-loop sends are paced to the µs.
class Poller : orch::NonCopyable {
 public:
  Poller();
  ~Poller();

  void add(int fd, uint32_t events, void* ptr);
  void modify(int fd, uint32_t events, void* ptr);
  void remove(int fd);
  // timeoutNs < 0 waits forever; returns the number of events (0 on timeout or EINTR).
  int wait(epoll_event* events, int max, int64_t timeoutNs);

 private:
  orch::UniqueFd epfd_;
};

}  // namespace orchload
