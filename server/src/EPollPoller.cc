#include "EPollPoller.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "Channel.h"

namespace orch {

namespace {
constexpr size_t kInitialEvents = 256;
constexpr size_t kMaxEvents = 4096;
}  // namespace

EPollPoller::EPollPoller() : epfd_(::epoll_create1(EPOLL_CLOEXEC)), events_(kInitialEvents) {
  if (!epfd_.valid()) {
    std::fprintf(stderr, "epoll_create1: %s\n", std::strerror(errno));
    std::abort();
  }
}

EPollPoller::~EPollPoller() = default;

void EPollPoller::poll(int timeoutMs, ChannelList* active) {
  int n = ::epoll_wait(epfd_.get(), events_.data(), static_cast<int>(events_.size()), timeoutMs);
  if (n < 0) {
    if (errno != EINTR) std::fprintf(stderr, "epoll_wait: %s\n", std::strerror(errno));
    return;
  }
  for (int i = 0; i < n; ++i) {
    auto* ch = static_cast<Channel*>(events_[i].data.ptr);
    ch->setRevents(events_[i].events);
    active->push_back(ch);
  }
  if (static_cast<size_t>(n) == events_.size() && events_.size() < kMaxEvents) {
    events_.resize(events_.size() * 2);
  }
}

void EPollPoller::updateChannel(Channel* channel) {
  if (!channel->registered()) {
    if (channel->events() == 0) return;
    control(EPOLL_CTL_ADD, channel);
    channel->setRegistered(true);
  } else if (channel->events() == 0) {
    control(EPOLL_CTL_DEL, channel);
    channel->setRegistered(false);
  } else {
    control(EPOLL_CTL_MOD, channel);
  }
}

void EPollPoller::removeChannel(Channel* channel) {
  if (channel->registered()) {
    control(EPOLL_CTL_DEL, channel);
    channel->setRegistered(false);
  }
}

void EPollPoller::control(int op, Channel* channel) {
  epoll_event ev{};
  ev.events = channel->events();
  ev.data.ptr = channel;
  if (::epoll_ctl(epfd_.get(), op, channel->fd(), &ev) < 0) {
    // Only a programming error gets here (bad fd or state); say so loudly.
    std::fprintf(stderr, "epoll_ctl(op=%d, fd=%d): %s\n", op, channel->fd(), std::strerror(errno));
  }
}

}  // namespace orch
