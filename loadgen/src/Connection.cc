#include "Connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "Clock.h"
#include "Target.h"
#include "Worker.h"

namespace orchload {

Connection::Connection(Worker* worker, const Target* target, int depth)
    : worker_(worker), target_(target), depth_(depth), ring_(static_cast<size_t>(depth)) {}

Connection::~Connection() { closeSocket(); }

void Connection::closeSocket() {
  if (fd_.valid()) {
    worker_->poller()->remove(fd_.get());
    fd_.reset();
  }
  state_ = State::kClosed;
  closing_ = false;
  wantWrite_ = false;
  count_ = 0;
  head_ = 0;
  out_.clear();
  outOff_ = 0;
}

void Connection::connect(int64_t now) {
  closeSocket();
  fd_.reset(::socket(target_->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) {
    connectFailed(now);
    return;
  }
  int one = 1;
  setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  parser_.reset(target_->head);
  int rc = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&target_->addr), target_->addrLen);
  if (rc < 0 && errno != EINPROGRESS) {
    connectFailed(now);
    return;
  }
  state_ = State::kConnecting;
  wantWrite_ = true;
  worker_->poller()->add(fd_.get(), EPOLLOUT, this);
}

void Connection::connectFailed(int64_t now) {
  closeSocket();
  worker_->onConnectFailed(this, now);  // it backs off and reconnects
}

void Connection::finishConnect(int64_t now) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    connectFailed(now);
    return;
  }
  state_ = State::kOpen;
  wantWrite_ = false;
  worker_->poller()->modify(fd_.get(), EPOLLIN, this);
  worker_->onConnected(this, now);
}

void Connection::updateEvents() {
  bool want = outOff_ < out_.size();
  if (want != wantWrite_ && fd_.valid()) {
    wantWrite_ = want;
    worker_->poller()->modify(fd_.get(), want ? EPOLLIN | EPOLLOUT : EPOLLIN, this);
  }
}

void Connection::send(int64_t intendedNs, int64_t now) {
  ring_[(head_ + count_) % depth_] = InFlight{intendedNs, now};
  ++count_;
  out_ += target_->request;
  if (!batching_) flush(now);
}

void Connection::flush(int64_t now) {
  while (outOff_ < out_.size()) {
    ssize_t n = ::send(fd_.get(), out_.data() + outOff_, out_.size() - outOff_, MSG_NOSIGNAL);
    if (n > 0) {
      outOff_ += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      fail(errno == ECONNRESET || errno == EPIPE ? ErrorKind::kReset : ErrorKind::kWrite, now);
      return;
    }
  }
  if (outOff_ == out_.size()) {
    out_.clear();
    outOff_ = 0;
  }
  updateEvents();
}

void Connection::fail(ErrorKind kind, int64_t now) {
  for (int i = 0; i < count_; ++i) worker_->onLost(inFlightAt(i), kind, now);
  closeSocket();
  worker_->onConnectionDown(this, kind, now);
}

void Connection::handleEvent(uint32_t events) {
  int64_t now = monoNs();
  if (state_ == State::kConnecting) {
    finishConnect(now);
    return;
  }
  if (state_ != State::kOpen) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) handleRead();
  if (state_ == State::kOpen && (events & EPOLLOUT)) flush(monoNs());
}

void Connection::handleRead() {
  char* buf = worker_->readBuffer();
  const size_t cap = worker_->readBufferSize();
  batching_ = true;
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, cap, 0);
    int64_t now = monoNs();
    if (n < 0) {
      if (errno == EINTR) continue;
      batching_ = false;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      fail(errno == ECONNRESET ? ErrorKind::kReset : ErrorKind::kRead, now);
      return;
    }
    if (n == 0) {  // the peer closed
      batching_ = false;
      closing_ = true;  // nothing more may be sent here, not even from onResponse
      bool bodyEnded = parser_.finishOnEof() == ResponseParser::Result::kDone && !parser_.idle();
      if (bodyEnded && count_ > 0) {
        InFlight done = inFlightAt(0);
        head_ = (head_ + 1) % depth_;
        --count_;
        worker_->onResponse(this, done, parser_.status(), now);
      }
      if (state_ != State::kOpen) return;
      if (count_ > 0) {
        fail(ErrorKind::kClosed, now);
      } else {
        closeSocket();
        worker_->onClosedCleanly(this, now);
      }
      return;
    }
    size_t off = 0;
    const size_t len = static_cast<size_t>(n);
    while (off < len) {
      size_t used = 0;
      ResponseParser::Result r = parser_.feed(buf + off, len - off, &used);
      off += used;
      if (r == ResponseParser::Result::kNeedMore) break;
      if (r == ResponseParser::Result::kError || count_ == 0) {  // garbage, or unasked-for answer
        batching_ = false;
        fail(ErrorKind::kProtocol, now);
        return;
      }
      InFlight done = inFlightAt(0);
      head_ = (head_ + 1) % depth_;
      --count_;
      bool keepAlive = parser_.keepAlive();
      int status = parser_.status();
      parser_.reset(target_->head);
      if (!keepAlive) closing_ = true;
      worker_->onResponse(this, done, status, now);
      if (state_ != State::kOpen) return;  // the worker dropped us
      if (closing_) {
        batching_ = false;
        if (count_ > 0) fail(ErrorKind::kClosed, now);
        else {
          closeSocket();
          worker_->onClosedCleanly(this, now);
        }
        return;
      }
    }
    if (len < cap) break;  // drained: level-triggered epoll reports anything newer
  }
  batching_ = false;
  if (state_ == State::kOpen) flush(monoNs());
}

}  // namespace orchload
