#include "Connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "EventLoop.h"
#include "HttpProcessing.h"
#include "Options.h"
#include "ResponseCache.h"
#include "Worker.h"

namespace orch {

Connection::Connection(Worker* worker, int fd, size_t index)
    : worker_(worker),
      fd_(fd),
      channel_(worker->loop(), fd),
      parser_(worker->options().limits),
      index_(index),
      lastActiveMs_(worker->loop()->nowMs()) {
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
      worker_->stats().bytesIn += static_cast<uint64_t>(n);
      lastActiveMs_ = worker_->loop()->nowMs();
      if (state_ == State::kOpen) {
        if (in_.empty()) {
          serve(buf, static_cast<size_t>(n));
        } else {
          in_.append(buf, static_cast<size_t>(n));
          serve(in_.data(), in_.size());
        }
      } else if (state_ == State::kClosing) {
        lingerOnClose_ = true;  // more input after the last request: discard
      }
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

void Connection::onPeerEof() {
  // The peer finished sending. Pending responses still go out; there is
  // nothing left to linger for.
  lingerOnClose_ = false;
  if (hasPendingOutput() && state_ != State::kDraining) {
    state_ = State::kClosing;
    return;
  }
  close();
}

void Connection::resume() {
  if (state_ != State::kOpen || !readPaused_) return;
  readPaused_ = false;
  if (!in_.empty()) serve(in_.data(), in_.size());
  // Edge-triggered: data that arrived while paused raised no new event.
  if (state_ == State::kOpen && !readPaused_) handleRead();
}

void Connection::serve(const char* data, size_t len) {
  const bool inBuffer = !in_.empty() && data == in_.data();
  size_t used = process(data, len);
  data += used;
  len -= used;
  if (state_ == State::kClosed) return;
  if (state_ != State::kOpen) len = 0;  // the request stream is over
  if (len > 0 && hasPendingOutput() && out_.size() - outOffset_ >= kHighWater) {
    // Back-pressure: stop reading until the responses drain (sendPending
    // resumes). Unserved requests wait in in_, the rest in the kernel.
    readPaused_ = true;
  }
  if (inBuffer) {
    in_.erase(0, in_.size() - len);
  } else {
    in_.assign(data, len);
  }
}

size_t Connection::process(const char* data, size_t len) {
  const size_t before = out_.size();
  const size_t pending = out_.size() - outOffset_;
  ProcessResult r = processRequests(parser_, worker_->responses(), worker_->stats(), data, len, &out_,
                                    pending < kHighWater ? kHighWater - pending : 0);
  if (r.lastResponse) {
    state_ = State::kClosing;
    if (r.linger) lingerOnClose_ = true;
  }
  if (r.completed) requestStartMs_ = -1;
  if (state_ == State::kOpen && parser_.inRequest() && requestStartMs_ < 0) {
    requestStartMs_ = worker_->loop()->nowMs();
  }
  if (out_.size() != before && !flushScheduled_) worker_->scheduleFlush(this);
  return r.consumed;
}

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
    worker_->stats().bytesOut += static_cast<uint64_t>(n);
    lastActiveMs_ = worker_->loop()->nowMs();
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
    afterLastResponse();
    if (state_ == State::kDraining) handleRead();  // edge-triggered: look now
  } else if (state_ == State::kOpen && readPaused_ && !resumeScheduled_) {
    resume();
  }
}

void Connection::handleWrite() {
  // EPOLLOUT accompanies nearly every EPOLLIN; only output that is waiting
  // for room (not already queued for this batch's flush) matters.
  if (state_ == State::kClosed || flushScheduled_ || !hasPendingOutput()) return;
  sendPending();
}

void Connection::afterLastResponse() {
  if (!lingerOnClose_) {
    close();
    return;
  }
  // The client may still be sending (a body we refused, pipelined requests
  // after "Connection: close"). Closing with unread data would send an RST
  // that can destroy our response in flight, so shut the write side and
  // read until EOF or the linger deadline.
  ::shutdown(fd_.get(), SHUT_WR);
  state_ = State::kDraining;
  drainDeadlineMs_ = worker_->loop()->nowMs() + kLingerMs;
  in_.clear();
  readPaused_ = false;
}

void Connection::queueError(int status) {
  ++worker_->stats().requests;
  state_ = State::kClosing;
  lingerOnClose_ = true;
  out_ += worker_->responses().error(status, parser_.errorForHead());
  if (!flushScheduled_) worker_->scheduleFlush(this);
}

void Connection::checkTimeouts(int64_t now) {
  const Options& opt = worker_->options();
  switch (state_) {
    case State::kOpen:
      if (!readPaused_ && requestStartMs_ >= 0 && now - requestStartMs_ >= opt.headerTimeoutMs) {
        if (hasPendingOutput()) {
          close();
        } else {
          queueError(408);
        }
      } else if (now - lastActiveMs_ >= opt.idleTimeoutMs) {
        close();
      }
      break;
    case State::kClosing:
      if (now - lastActiveMs_ >= opt.idleTimeoutMs) close();
      break;
    case State::kDraining:
      if (now >= drainDeadlineMs_) close();
      break;
    case State::kClosed:
      break;
  }
}

void Connection::forceClose() { close(); }

void Connection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (resumeScheduled_) worker_->cancelResume(this);
  if (flushScheduled_) worker_->cancelFlush(this);
  // close() drops the fd from the epoll set (it was never dup()ed), so no
  // EPOLL_CTL_DEL is needed.
  channel_.forgetBeforeClose();
  fd_.reset();
  worker_->connectionClosed(this);
}

}  // namespace orch
