#include "Poller.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace orchload {

Poller::Poller() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
  if (!epfd_.valid()) {
    std::perror("orchestrate-load: epoll_create1");
    std::exit(1);
  }
}

Poller::~Poller() = default;

void Poller::add(int fd, uint32_t events, void* ptr) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = ptr;
  epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev);
}

void Poller::modify(int fd, uint32_t events, void* ptr) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = ptr;
  epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev);
}

void Poller::remove(int fd) { epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

int Poller::wait(epoll_event* events, int max, int64_t timeoutNs) {
  timespec ts;
  timespec* tp = nullptr;
  if (timeoutNs >= 0) {
    ts.tv_sec = timeoutNs / 1000000000LL;
    ts.tv_nsec = timeoutNs % 1000000000LL;
    tp = &ts;
  }
  int n = epoll_pwait2(epfd_.get(), events, max, tp, nullptr);
  return n < 0 ? 0 : n;
}

}  // namespace orchload
