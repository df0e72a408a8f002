#include "UringConnection.h"

#include <sys/socket.h>

#include <cerrno>

#include "HttpProcessing.h"
#include "Options.h"
#include "ResponseCache.h"
#include "UringWorker.h"

namespace orch {

UringConnection::UringConnection(UringWorker* worker, int fd, size_t index)
    : worker_(worker),
      fd_(fd),
      parser_(worker->options().limits),
      index_(index),
      lastActiveMs_(worker->nowMs()) {}

UringConnection::~UringConnection() = default;

void UringConnection::start() { armRecv(); }

void UringConnection::armRecv() {
  io_uring_sqe* sqe = worker_->ring().sqe();
  io_uring_prep_recv_multishot(sqe, fd_.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = UringRing::kBufferGroup;
  io_uring_sqe_set_data64(sqe, UringWorker::tag(this, UringWorker::kRecv));
  recvArmed_ = true;
}

void UringConnection::cancel(uint64_t userData) {
  io_uring_sqe* sqe = worker_->ring().sqe();
  io_uring_prep_cancel64(sqe, userData, 0);
  io_uring_sqe_set_data64(sqe, UringWorker::tag(nullptr, UringWorker::kIgnore));
}

void UringConnection::onRecv(const io_uring_cqe* cqe) {
  const int res = cqe->res;
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) recvArmed_ = false;
  if (res > 0) {
    const auto bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    const char* data = worker_->ring().buffer(bid);
    const auto n = static_cast<size_t>(res);
    worker_->stats().bytesIn += n;
    lastActiveMs_ = worker_->nowMs();
    if (state_ == State::kOpen) {
      if (readPaused_) {
        in_.append(data, n);  // arrived before the cancel took effect
      } else if (in_.empty()) {
        serve(data, n);
      } else {
        in_.append(data, n);
        serve(in_.data(), in_.size());
      }
    } else if (state_ == State::kClosing) {
      lingerOnClose_ = true;  // more input after the last request: discard
    }
    worker_->ring().recycleBuffer(bid);
  } else if (res == 0) {
    if (state_ != State::kClosed) onPeerEof();
  } else if (res != -ENOBUFS && res != -ECANCELED && state_ != State::kClosed) {
    close();  // ECONNRESET and the like
  }
  if (state_ == State::kClosed) {
    if (!inFlight()) worker_->release(this);
    return;
  }
  // ENOBUFS (every buffer in use this batch) or a data completion that ended
  // the multishot: arm again. Not at EOF, nor while paused.
  if (!recvArmed_ && res != 0 && !readPaused_) armRecv();
}

void UringConnection::onPeerEof() {
  lingerOnClose_ = false;
  if (hasPendingOutput() && state_ != State::kDraining) {
    state_ = State::kClosing;
    return;
  }
  close();
}

void UringConnection::serve(const char* data, size_t len) {
  const bool inBuffer = !in_.empty() && data == in_.data();
  size_t used = process(data, len);
  data += used;
  len -= used;
  if (state_ == State::kClosed) return;
  if (state_ != State::kOpen) len = 0;  // the request stream is over
  if (len > 0 && pendingOutput() >= kHighWater) pauseReading();
  if (inBuffer) {
    in_.erase(0, in_.size() - len);
  } else {
    in_.assign(data, len);
  }
}

size_t UringConnection::process(const char* data, size_t len) {
  const size_t before = out_.size();
  const size_t pending = pendingOutput();
  ProcessResult r = processRequests(parser_, worker_->responses(), worker_->stats(), data, len, &out_,
                                    pending < kHighWater ? kHighWater - pending : 0);
  if (r.lastResponse) {
    state_ = State::kClosing;
    if (r.linger) lingerOnClose_ = true;
  }
  if (r.completed) requestStartMs_ = -1;
  if (state_ == State::kOpen && parser_.inRequest() && requestStartMs_ < 0) requestStartMs_ = worker_->nowMs();
  if (out_.size() != before) scheduleFlush();
  return r.consumed;
}

void UringConnection::scheduleFlush() {
  if (!flushScheduled_ && !sendInFlight_) worker_->scheduleFlush(this);
}

void UringConnection::pauseReading() {
  if (readPaused_) return;
  readPaused_ = true;
  if (recvArmed_) cancel(UringWorker::tag(this, UringWorker::kRecv));
}

void UringConnection::resumeReading() {
  if (!readPaused_ || state_ != State::kOpen) return;
  readPaused_ = false;
  if (!in_.empty()) serve(in_.data(), in_.size());
  // If the cancel has not completed yet, its completion re-arms.
  if (state_ != State::kClosed && !readPaused_ && !recvArmed_) armRecv();
}

void UringConnection::submitSend() {
  if (state_ == State::kClosed || sendInFlight_) return;
  if (sendOffset_ == sending_.size()) {
    if (out_.empty()) return;
    sending_.clear();
    sending_.swap(out_);
    sendOffset_ = 0;
  }
  io_uring_sqe* sqe = worker_->ring().sqe();
  io_uring_prep_send(sqe, fd_.get(), sending_.data() + sendOffset_, sending_.size() - sendOffset_, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, UringWorker::tag(this, UringWorker::kSend));
  sendInFlight_ = true;
}

void UringConnection::onSend(int res) {
  sendInFlight_ = false;
  if (state_ == State::kClosed) {
    if (!inFlight()) worker_->release(this);
    return;
  }
  if (res < 0) {
    close();  // EPIPE, ECONNRESET
    if (!inFlight()) worker_->release(this);
    return;
  }
  worker_->stats().bytesOut += static_cast<uint64_t>(res);
  lastActiveMs_ = worker_->nowMs();
  sendOffset_ += static_cast<size_t>(res);
  if (sendOffset_ < sending_.size() || !out_.empty()) {
    submitSend();  // the rest, or what was queued meanwhile
    return;
  }
  sending_.clear();
  sendOffset_ = 0;
  if (sending_.capacity() > kKeepCapacity) sending_.shrink_to_fit();
  if (state_ == State::kClosing) {
    afterLastResponse();
  } else if (readPaused_) {
    resumeReading();
  }
  if (state_ == State::kClosed && !inFlight()) worker_->release(this);
}

void UringConnection::afterLastResponse() {
  if (!lingerOnClose_) {
    close();
    return;
  }
  // The client may still be sending (a body we refused, pipelined requests
  // after "Connection: close"): shut the write side and read until EOF or
  // the linger deadline, so that no RST destroys the response in flight.
  ::shutdown(fd_.get(), SHUT_WR);
  state_ = State::kDraining;
  drainDeadlineMs_ = worker_->nowMs() + kLingerMs;
  in_.clear();
  readPaused_ = false;
  if (!recvArmed_) armRecv();
}

void UringConnection::queueError(int status) {
  ++worker_->stats().requests;
  state_ = State::kClosing;
  lingerOnClose_ = true;
  out_ += worker_->responses().error(status, parser_.errorForHead());
  scheduleFlush();
}

void UringConnection::checkTimeouts(int64_t now) {
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

void UringConnection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  // Socket operations wait on poll, so a cancel (an SQE, no syscall)
  // ends them; their last completion releases this object.
  if (recvArmed_) cancel(UringWorker::tag(this, UringWorker::kRecv));
  if (sendInFlight_) cancel(UringWorker::tag(this, UringWorker::kSend));
  fd_.reset();  // the ring holds its own reference while operations run
  worker_->connectionClosed(this);
}

}  // namespace orch
