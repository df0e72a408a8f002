#include "UringConnection.h"

#include <sys/socket.h>

#include <cerrno>

#include "UringWorker.h"

namespace orch {

UringConnection::UringConnection(UringWorker* worker, int fd)
    : HttpSession(fd, worker->options(), worker->responses(), worker->work(), worker->stats(), worker->nowMs()),
      worker_(worker) {}

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
    onInput(worker_->ring().buffer(bid), static_cast<size_t>(res), worker_->nowMs());
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

void UringConnection::scheduleFlush() {
  if (!flushScheduled() && !sendInFlight_) worker_->scheduleFlush(this);
}

void UringConnection::stopReading() {
  if (recvArmed_) cancel(UringWorker::tag(this, UringWorker::kRecv));
}

void UringConnection::resumeReading() {
  if (!readPaused_ || state_ != State::kOpen) return;
  resumeInput(worker_->nowMs());
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
  onSent(static_cast<size_t>(res), worker_->nowMs());
  sendOffset_ += static_cast<size_t>(res);
  if (sendOffset_ < sending_.size() || !out_.empty()) {
    submitSend();  // the rest, or what was queued meanwhile
    return;
  }
  sending_.clear();
  sendOffset_ = 0;
  if (sending_.capacity() > kKeepCapacity) sending_.shrink_to_fit();
  if (state_ == State::kClosing) {
    afterLastResponse(worker_->nowMs());
    if (state_ == State::kDraining && !recvArmed_) armRecv();  // read until EOF or the deadline
  } else if (readPaused_) {
    resumeReading();
  }
  if (state_ == State::kClosed && !inFlight()) worker_->release(this);
}

void UringConnection::closeTransport() {
  // Socket operations wait on poll, so a cancel (an SQE, no syscall)
  // ends them; their last completion releases this object.
  if (recvArmed_) cancel(UringWorker::tag(this, UringWorker::kRecv));
  if (sendInFlight_) cancel(UringWorker::tag(this, UringWorker::kSend));
  fd_.reset();  // the ring holds its own reference while operations run
  worker_->connectionClosed(this);
}

}  // namespace orch
