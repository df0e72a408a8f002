#include "Connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "EventLoop.h"
#include "Worker.h"

namespace orch {

Connection::Connection(Worker* worker, int fd)
    : HttpSession(fd, worker->options(), worker->responses(), worker->work(), worker->stats(), worker->loop()->nowMs()),
      worker_(worker),
      channel_(worker->loop(), fd) {
  channel_.setReadCallback([this] { handleRead(); });
  channel_.setWriteCallback([this] { handleWrite(); });
}

Connection::~Connection() {
  if (state_ != State::kClosed) channel_.forgetBeforeClose();
}

void Connection::start() { channel_.enableEdgeTriggeredReadWrite(); }

void Connection::handleRead() {
  if (state_ == State::kClosed || readPaused_) return;  // paused: resume() reads
  const bool peerShut = channel_.revents() & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  char* buf = worker_->readBuffer();
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    ssize_t n = ::recv(fd_.get(), buf, Worker::kReadBufferSize, 0);
    if (n > 0) {
      onInput(buf, static_cast<size_t>(n), worker_->loop()->nowMs());
      if (state_ == State::kClosed || readPaused_) return;
      // A short read drained the socket. Only if the FIN is already queued
      // is another recv (returning 0) worth its syscall.
      if (static_cast<size_t>(n) < Worker::kReadBufferSize && !peerShut) return;
      continue;
    }
    if (n == 0) {
      onPeerEof();
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno != EINTR) {
      close();
      return;
    }
  }
  // Still more to read: let the other sockets of this batch go first.
  readPaused_ = true;
  worker_->scheduleResume(this);
}

void Connection::resume() {
  if (state_ != State::kOpen || !readPaused_) return;
  resumeInput(worker_->loop()->nowMs());
  // Edge-triggered: data that arrived while paused raised no new event.
  if (state_ == State::kOpen && !readPaused_) handleRead();
}

void Connection::scheduleFlush() { worker_->scheduleFlush(this); }  // once per batch

void Connection::sendPending() {
  if (state_ == State::kClosed) return;
  if (hasPendingOutput()) {
    ssize_t n = ::send(fd_.get(), out_.data() + outOffset_, out_.size() - outOffset_, MSG_NOSIGNAL);
    if (n < 0) {
      // EAGAIN: the send buffer is full; EPOLLOUT (always registered,
      // edge-triggered) fires when it has room.
      if (errno != EAGAIN && errno != EINTR) close();
      return;
    }
    onSent(static_cast<size_t>(n), worker_->loop()->nowMs());
    outOffset_ += static_cast<size_t>(n);
    if (hasPendingOutput()) {
      if (outOffset_ > out_.size() / 2) {  // keep the buffer from creeping
        out_.erase(0, outOffset_);
        outOffset_ = 0;
      }
      return;
    }
    out_.clear();
    outOffset_ = 0;
    if (out_.capacity() > kKeepCapacity) out_.shrink_to_fit();
  }
  if (state_ == State::kClosing) {
    afterLastResponse(worker_->loop()->nowMs());
    if (state_ == State::kDraining) handleRead();  // edge-triggered: look now
  } else if (state_ == State::kOpen && readPaused_ && !resumeScheduled_) {
    resume();
  }
}

void Connection::handleWrite() {
  // EPOLLOUT accompanies nearly every EPOLLIN; only output that is waiting
  // for room (not already queued for this batch's flush) matters.
  if (state_ == State::kClosed || flushScheduled() || !hasPendingOutput()) return;
  sendPending();
}

void Connection::closeTransport() {
  if (resumeScheduled_) worker_->cancelResume(this);
  if (flushScheduled()) worker_->cancelFlush(this);
  // close() drops the fd from the epoll set (it was never dup()ed), so no
  // EPOLL_CTL_DEL is needed.
  channel_.forgetBeforeClose();
  fd_.reset();
  worker_->connectionClosed(this);
}

}  // namespace orch
