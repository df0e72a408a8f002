#include "UringWorker.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "Options.h"
#include "UringConnection.h"

namespace orch {

namespace {
int openReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
constexpr int64_t kAcceptPauseMs = 100;
constexpr unsigned kRingEntries = 4096;
}  // namespace

UringWorker::UringWorker(const Options& options, UniqueFd listenFd, ConnectionLimit* limit, int cpu)
    : options_(options),
      limit_(limit),
      cpu_(cpu),
      listenFd_(std::move(listenFd)),
      reserveFd_(openReserve()),
      responses_(options.body),
      work_(options.workUs) {}

UringWorker::~UringWorker() = default;

void UringWorker::updateNow() {
  nowMs_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
               .count();
}

bool UringWorker::init(std::string* error) {
  tid_ = static_cast<int>(::gettid());
  updateNow();
  ring_ = std::make_unique<UringRing>();
  if (!ring_->init(kRingEntries, error)) return false;
  wakeFd_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!wakeFd_.valid()) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  // Same sweep interval as the epoll Worker: a quarter of the shortest
  // timeout, 5-250 ms.
  tickMs_ = std::clamp<int64_t>(std::min(options_.idleTimeoutMs, options_.headerTimeoutMs) / 4, 5, 250);
  armWake();
  armAccept();
  int rc = io_uring_submit(ring_->ring());
  if (rc < 0) {
    *error = std::string("io_uring_submit: ") + std::strerror(-rc);
    return false;
  }
  return true;
}

void UringWorker::stop() {
  stopping_.store(true);
  uint64_t one = 1;
  if (wakeFd_.valid()) (void)!::write(wakeFd_.get(), &one, sizeof(one));
}

void UringWorker::armWake() {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_read(sqe, wakeFd_.get(), &wakeValue_, sizeof(wakeValue_), 0);
  io_uring_sqe_set_data64(sqe, tag(nullptr, kWake));
}

void UringWorker::armAccept() {
  io_uring_sqe* sqe = ring_->sqe();
  io_uring_prep_multishot_accept(sqe, listenFd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, tag(nullptr, kAccept));
  acceptArmed_ = true;
}

void UringWorker::run() {
  int64_t nextTick = nowMs_ + tickMs_;
  while (!stopping_.load(std::memory_order_relaxed)) {
    runFlushes();
    graveyard_.clear();
    int64_t waitMs = std::max<int64_t>(0, nextTick - nowMs_);
    __kernel_timespec ts{};
    ts.tv_sec = waitMs / 1000;
    ts.tv_nsec = (waitMs % 1000) * 1000000;
    io_uring_cqe* first = nullptr;
    // One io_uring_enter: submits this round's SQEs, waits for a completion
    // or the next tick (EXT_ARG timeout, no timer SQE).
    int rc = io_uring_submit_and_wait_timeout(ring_->ring(), &first, 1, &ts, nullptr);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
      std::fprintf(stderr, "io_uring_submit_and_wait_timeout: %s\n", std::strerror(-rc));
    }
    updateNow();
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(ring_->ring(), head, cqe) {
      handle(cqe);
      ++seen;
    }
    io_uring_cq_advance(ring_->ring(), seen);
    if (nowMs_ >= nextTick) {
      onTick();
      nextTick = nowMs_ + tickMs_;
    }
  }
  // Close everything; the ring's exit (in ~UringRing) cancels what is left.
  connections_.closeAll();
  ring_.reset();  // cancels every operation still in flight
  listenFd_.reset();
}

void UringWorker::handle(const io_uring_cqe* cqe) {
  const uint64_t data = io_uring_cqe_get_data64(cqe);
  auto* conn = reinterpret_cast<UringConnection*>(data & ~static_cast<uint64_t>(kOpMask));
  switch (static_cast<Op>(data & kOpMask)) {
    case kAccept:
      onAccept(cqe);
      break;
    case kRecv:
      conn->onRecv(cqe);
      break;
    case kSend:
      conn->onSend(cqe->res);
      break;
    case kWake:
      stopping_.store(true);
      break;
    case kIgnore:
    case kOpMask:
      break;
  }
}

void UringWorker::onAccept(const io_uring_cqe* cqe) {
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) acceptArmed_ = false;
  const int fd = cqe->res;
  if (fd >= 0) {
    if (limit_->admit(fd)) {
      ++stats_.connections;
      connections_.add(std::make_unique<UringConnection>(this, fd))->start();
    }
  } else if (fd == -EMFILE || fd == -ENFILE) {
    refuseOne();
  } else if (fd == -ENOBUFS || fd == -ENOMEM) {
    acceptPausedUntilMs_ = nowMs_ + kAcceptPauseMs;
  }
  // ECONNABORTED, EINTR, EAGAIN: nothing to do.
  if (!acceptArmed_ && acceptPausedUntilMs_ == 0 && !stopping_.load(std::memory_order_relaxed)) armAccept();
}

void UringWorker::refuseOne() {
  // Out of fds: free the reserve, take the pending connection and close it,
  // so the client hears at once instead of waiting in the backlog.
  reserveFd_.reset();
  int victim = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (victim >= 0) ::close(victim);
  reserveFd_.reset(openReserve());
  if (victim < 0 || !reserveFd_.valid()) acceptPausedUntilMs_ = nowMs_ + kAcceptPauseMs;
}

void UringWorker::scheduleFlush(UringConnection* conn) {
  conn->setFlushScheduled(true);
  flushList_.push_back(conn);
}

void UringWorker::runFlushes() {
  // Connections closed meanwhile are still alive (freed only after this).
  for (UringConnection* c : flushList_) {
    c->setFlushScheduled(false);
    c->submitSend();
  }
  flushList_.clear();
}

void UringWorker::connectionClosed(UringConnection* conn) {
  std::unique_ptr<UringConnection> owned = connections_.take(conn);
  limit_->release();
  if (owned->inFlight()) {
    zombies_.emplace(conn, std::move(owned));
  } else {
    graveyard_.push_back(std::move(owned));
  }
}

void UringWorker::release(UringConnection* conn) {
  auto it = zombies_.find(conn);
  if (it == zombies_.end()) return;  // already in the graveyard
  graveyard_.push_back(std::move(it->second));
  zombies_.erase(it);
}

void UringWorker::onTick() {
  responses_.refresh(std::time(nullptr));
  if (acceptPausedUntilMs_ != 0 && nowMs_ >= acceptPausedUntilMs_) {
    acceptPausedUntilMs_ = 0;
    if (!reserveFd_.valid()) reserveFd_.reset(openReserve());
    if (!acceptArmed_) armAccept();
  }
  connections_.checkTimeouts(nowMs_);
}

}  // namespace orch
