#include "Acceptor.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "Channel.h"
#include "EventLoop.h"

namespace orch {

namespace {
int openReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
}  // namespace

Acceptor::Acceptor(EventLoop* loop, UniqueFd listenFd, NewConnectionCallback cb)
    : loop_(loop),
      listenFd_(std::move(listenFd)),
      reserveFd_(openReserve()),
      channel_(std::make_unique<Channel>(loop, listenFd_.get())),
      newConnection_(std::move(cb)) {
  channel_->setReadCallback([this] { handleRead(); });
}

Acceptor::~Acceptor() {
  if (pauseTimer_ != 0) loop_->cancelTimer(pauseTimer_);
  channel_->remove();
}

void Acceptor::listen() {
  loop_->assertInLoopThread();
  channel_->enableReading();
}

void Acceptor::handleRead() {
  // One accept per readiness report: with level-triggered epoll a second
  // pending connection is reported again, and a loop until EAGAIN would cost
  // a failing accept4 on every wake-up.
  int fd = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    ++accepted_;
    newConnection_(fd);
    return;
  }
  if (errno == EMFILE || errno == ENFILE) {
    reserveFd_.reset();
    int victim = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (victim >= 0) {
      ::close(victim);
      ++refused_;
    }
    reserveFd_.reset(openReserve());
    if (victim < 0 || !reserveFd_.valid()) pause();
  } else if (errno == ENOBUFS || errno == ENOMEM) {
    pause();
  }
  // EAGAIN (another listener won), ECONNABORTED, EINTR, EPERM: nothing to do.
}

void Acceptor::pause() {
  if (pauseTimer_ != 0) return;
  channel_->disableReading();
  pauseTimer_ = loop_->runAfter(kPauseMs, [this] {
    pauseTimer_ = 0;
    if (!reserveFd_.valid()) reserveFd_.reset(openReserve());
    channel_->enableReading();
  });
}

}  // namespace orch
