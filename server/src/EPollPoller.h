#pragma once

#include <sys/epoll.h>

#include <vector>

#include "Poller.h"
#include "Socket.h"

namespace orch {

// Level-triggered epoll. Level-triggered lets a connection read once per
// wake-up and leave the rest for the next epoll_wait, so it never issues a
// read that is bound to return EAGAIN.
class EPollPoller final : public Poller {
 public:
  EPollPoller();
  ~EPollPoller() override;

  void poll(int timeoutMs, ChannelList* active) override;
  void updateChannel(Channel* channel) override;
  void removeChannel(Channel* channel) override;

 private:
  void control(int op, Channel* channel);

  UniqueFd epfd_;
  // Grows (bounded) when a poll fills it, so a busy loop takes many events
  // per epoll_wait.
  std::vector<epoll_event> events_;
};

}  // namespace orch
