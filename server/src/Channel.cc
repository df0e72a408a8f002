#include "Channel.h"

#include <sys/epoll.h>

#include "EventLoop.h"

namespace orch {

Channel::Channel(EventLoop* loop, int fd) : loop_(loop), fd_(fd) {}

Channel::~Channel() {
  if (registered_) remove();
}

void Channel::handleEvent() {
  // Errors and hang-ups are delivered to the read side: the following read()
  // returns 0 or the error, which is where the owner decides to close.
  if ((revents_ & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) && readCallback_) readCallback_();
  if ((revents_ & EPOLLOUT) && writeCallback_) writeCallback_();
}

void Channel::enableEdgeTriggeredReadWrite() {
  events_ = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  update();
}

void Channel::enableReading() { events_ |= EPOLLIN; update(); }
void Channel::disableReading() { events_ &= ~static_cast<uint32_t>(EPOLLIN); update(); }
void Channel::enableWriting() { events_ |= EPOLLOUT; update(); }
void Channel::disableWriting() { events_ &= ~static_cast<uint32_t>(EPOLLOUT); update(); }
bool Channel::isReading() const { return events_ & EPOLLIN; }
bool Channel::isWriting() const { return events_ & EPOLLOUT; }

void Channel::update() { loop_->updateChannel(this); }

void Channel::remove() {
  events_ = 0;
  loop_->removeChannel(this);
}

}  // namespace orch
