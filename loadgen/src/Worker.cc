#include "Worker.h"

#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "Clock.h"
#include "orch/Affinity.h"

namespace orchload {

namespace {
constexpr int64_t kTickNs = 5'000'000;         // timeouts and reconnects checked this often
constexpr int64_t kMinBackoffNs = 10'000'000;  // reconnect after a refused connect
constexpr int64_t kMaxBackoffNs = 200'000'000;
int wakeTag;                                   // its address marks the eventfd in epoll

int64_t toUs(int64_t ns) { return ns <= 0 ? 0 : (ns + 500) / 1000; }
}  // namespace

Worker::Worker(int id, int threads, int connections, int cpu, const Options& options,
               const std::vector<Target>& targets, Timeline* timeline)
    : id_(id),
      threads_(threads),
      cpu_(cpu),
      options_(options),
      tl_(timeline),
      open_(options.openLoop()),
      periodNs_(options.openLoop() ? 1e9 / options.rate : 0),
      timeoutNs_(static_cast<int64_t>(options.timeoutS * 1e9)),
      minSleepNs_(static_cast<int64_t>(options.minSleepUs * 1e3)),
      wakeFd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      readBuffer_(64 * 1024),
      stats_(static_cast<size_t>(std::ceil(options.durationS))) {
  const int depth = options.pipeline;
  for (int i = 0; i < connections; ++i) {
    // connection k of the whole run (k = i * threads + id) goes to targets[k % n]
    size_t k = static_cast<size_t>(i) * static_cast<size_t>(threads) + static_cast<size_t>(id);
    conns_.push_back(std::make_unique<Connection>(this, &targets[k % targets.size()], depth));
  }
  poller_.add(wakeFd_.get(), EPOLLIN, &wakeTag);
}

Worker::~Worker() {
  conns_.clear();  // closes sockets while the poller still exists
}

void Worker::start() { thread_ = std::thread([this] { run(); }); }
void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::wake() {
  uint64_t one = 1;
  ssize_t rc = ::write(wakeFd_.get(), &one, sizeof one);
  (void)rc;
}

void Worker::pin() {
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // default 50 µs slack would blur the pacing
  orch::pinCurrentThreadOrWarn(cpu_, "orchestrate-load", "a load thread");
}

int64_t Worker::slotTime(int64_t k) const {
  double slot = static_cast<double>(k) * threads_ + id_;
  return tl_->startNs + static_cast<int64_t>(std::llround(slot * periodNs_));
}

int64_t Worker::dueCount(int64_t now) const {
  if (now < tl_->startNs) return 0;
  double x = static_cast<double>(now - tl_->startNs) / periodNs_;
  int64_t k = x < id_ ? 0 : static_cast<int64_t>((x - id_) / threads_) + 1;
  while (slotTime(k) <= now) ++k;  // settle rounding against slotTime itself
  while (k > 0 && slotTime(k - 1) > now) --k;
  return k;
}

void Worker::makeFree(Connection* c, int64_t now) {
  if (!c->inFreeList && c->canSend()) {
    c->inFreeList = true;
    c->freeSinceNs = now;
    free_.push_back(c);
  }
}

Connection* Worker::popFree() {
  while (!free_.empty()) {
    Connection* c = free_.front();
    free_.pop_front();
    c->inFreeList = false;
    if (c->canSend()) return c;
  }
  return nullptr;
}

void Worker::dispatch(int64_t now) {
  const int64_t end = std::min(tl_->measureEndNs, tl_->stopNs.load(std::memory_order_relaxed));
  int64_t due = dueCount(std::min(now, end - 1));
  while (sentSlots_ < due) {
    Connection* c = popFree();
    if (!c) break;
    int64_t intended = slotTime(sentSlots_++);
    if (inWindow(intended)) {
      ++stats_.sent;
      stats_.clientSendLag.record(toUs(now - std::max(intended, c->freeSinceNs)));
    }
    if (!stats_.firstSendNs) stats_.firstSendNs = now;
    const int64_t freeSince = c->freeSinceNs;
    c->send(intended, now);
    makeFree(c, freeSince);  // pipelining: still room, free all along
  }
  if (sentSlots_ < due) {
    for (int64_t k = std::max(sentSlots_, queuedUpTo_); k < due; ++k)
      if (inWindow(slotTime(k))) ++stats_.queued;
    queuedUpTo_ = std::max(queuedUpTo_, due);
    stats_.maxQueue = std::max(stats_.maxQueue, due - sentSlots_);
  }
}

void Worker::fill(Connection* c, int64_t now) {
  if (now >= std::min(tl_->measureEndNs, tl_->stopNs.load(std::memory_order_relaxed))) return;
  while (c->canSend()) {
    if (inWindow(now)) {
      ++stats_.requests;
      ++stats_.sent;
    }
    if (!stats_.firstSendNs) stats_.firstSendNs = now;
    c->send(now, now);
  }
}

void Worker::onConnected(Connection* c, int64_t now) {
  ++stats_.connects;
  c->backoffNs = 0;
  c->freeSinceNs = now;  // free from now on, even if a stale entry is still in the free list
  if (open_) makeFree(c, now);
  else if (closedStarted_) fill(c, now);
}

void Worker::onConnectFailed(Connection* c, int64_t now) {
  ++stats_.errors[static_cast<int>(ErrorKind::kConnect)];
  c->backoffNs = std::clamp(c->backoffNs * 2, kMinBackoffNs, kMaxBackoffNs);
  c->retryAtNs = now + c->backoffNs;
}

void Worker::onResponse(Connection* c, const InFlight& r, int status, int64_t now) {
  if (now >= tl_->measureStartNs && now < tl_->measureEndNs) {
    size_t sec = static_cast<size_t>((now - tl_->measureStartNs) / 1000000000LL);
    if (sec < stats_.perSecond.size()) ++stats_.perSecond[sec];
  }
  if (inWindow(r.intendedNs)) {
    ++stats_.responses;
    ++stats_.status[status >= 100 && status < 600 ? status / 100 : 0];
    recordLatency(r, now);
  }
  if (open_) makeFree(c, now);
  else fill(c, now);
}

void Worker::recordLatency(const InFlight& r, int64_t now, int64_t minServiceNs) {
  const int64_t lag = r.sentNs - r.intendedNs;
  const int64_t service = std::max(now - r.sentNs, minServiceNs);
  stats_.latency.record(toUs(lag + service));
  stats_.service.record(toUs(service));
  stats_.sendLag.record(toUs(lag));
}

// A timed-out request counts at least --timeout from its send (the connection's later
// requests, failed with it, too: pipelined answers come in order, so theirs would have come
// later still); one lost with its connection counts until now, when that was known.
void Worker::onLost(const InFlight& r, ErrorKind kind, int64_t now) {
  if (!inWindow(r.intendedNs)) return;
  ++stats_.failed;
  ++stats_.failedBy[static_cast<int>(kind)];
  recordLatency(r, now, kind == ErrorKind::kTimeout ? timeoutNs_ : 0);
}

void Worker::onConnectionDown(Connection* c, ErrorKind kind, int64_t now) {
  ++stats_.errors[static_cast<int>(kind)];
  c->retryAtNs = now;  // reconnect at the next tick (a refused connect then backs off)
}

void Worker::onClosedCleanly(Connection* c, int64_t now) {
  if (!draining_) c->connect(now);
}

void Worker::tick(int64_t now) {
  for (auto& c : conns_) {
    if (c->state() == Connection::State::kOpen && c->inFlight() > 0 &&
        now - c->inFlightAt(0).sentNs > timeoutNs_) {
      stats_.errors[static_cast<int>(ErrorKind::kTimeout)] += c->inFlight() - 1;
      c->fail(ErrorKind::kTimeout, now);
    } else if (!draining_ && c->state() == Connection::State::kClosed && now >= c->retryAtNs) {
      c->connect(now);
    }
  }
}

int64_t Worker::drain(int64_t end) {
  draining_ = true;
  // every request in flight was sent before `end`: by this time each has been answered or
  // timed out by tick() (which runs every kTickNs)
  const int64_t deadline = end + timeoutNs_ + 2 * kTickNs;
  int64_t now = monoNs();
  int64_t nextTick = now;
  for (;;) {
    if (now >= nextTick) {
      tick(now);
      nextTick = now + kTickNs;
    }
    bool inFlight = std::any_of(conns_.begin(), conns_.end(), [](const auto& c) { return c->inFlight() > 0; });
    if (!inFlight || now >= deadline) return now;
    if (now >= tl_->drainStopNs.load(std::memory_order_relaxed)) {
      stats_.drainCut = true;
      return now;
    }
    pollOnce(std::max<int64_t>(std::min(deadline, nextTick) - now, 0));
    now = monoNs();
  }
}

void Worker::finish(int64_t end, int64_t drainEnd, bool cut) {
  for (auto& c : conns_) {
    for (int i = 0; i < c->inFlight(); ++i) {
      const InFlight& r = c->inFlightAt(i);
      if (!cut) ++stats_.errors[static_cast<int>(ErrorKind::kTimeout)];
      if (!inWindow(r.intendedNs)) continue;
      if (cut) {  // a signal ended the drain: unanswered, until now
        ++stats_.unanswered;
        recordLatency(r, drainEnd);
      } else {    // the drain's deadline passed: timed out
        ++stats_.failed;
        ++stats_.failedBy[static_cast<int>(ErrorKind::kTimeout)];
        recordLatency(r, drainEnd, timeoutNs_);
      }
    }
  }
  if (open_) {
    // still waiting for a free connection: from the intended time to the drain's end
    for (int64_t k = sentSlots_, due = dueCount(end - 1); k < due; ++k) {
      int64_t intended = slotTime(k);
      if (inWindow(intended)) {
        ++stats_.unsent;
        ++stats_.unanswered;
        recordLatency(InFlight{intended, drainEnd}, drainEnd);
      }
    }
    for (int64_t k = 0, n = dueCount(std::min(end, tl_->measureEndNs) - 1); k < n; ++k)
      if (inWindow(slotTime(k))) ++stats_.requests;
  }
  stats_.drainEndNs = drainEnd;
  conns_.clear();
}

void Worker::pollOnce(int64_t timeoutNs) {
  epoll_event events[256];
  int n = poller_.wait(events, 256, timeoutNs);
  for (int i = 0; i < n; ++i) {
    if (events[i].data.ptr == &wakeTag) {
      uint64_t v;
      ssize_t rc = ::read(wakeFd_.get(), &v, sizeof v);
      (void)rc;
      continue;
    }
    static_cast<Connection*>(events[i].data.ptr)->handleEvent(events[i].events);
  }
}

void Worker::run() {
  pin();
  int64_t now = monoNs();
  for (auto& c : conns_) c->connect(now);
  int64_t nextTick = now + kTickNs;
  for (;;) {
    now = monoNs();
    const int64_t end = std::min(tl_->measureEndNs, tl_->stopNs.load(std::memory_order_relaxed));
    if (now >= end) break;
    int64_t wakeAt = std::min(end, nextTick);
    if (started(now)) {
      if (open_) {
        dispatch(now);
        if (!free_.empty()) wakeAt = std::min(wakeAt, slotTime(sentSlots_));
      } else if (!closedStarted_) {
        closedStarted_ = true;
        for (auto& c : conns_) fill(c.get(), now);
      }
    } else {
      wakeAt = std::min(wakeAt, tl_->startNs);
    }
    int64_t timeout = std::max<int64_t>(wakeAt - now, 0);
    // Never spin: a shorter wait is stretched to --min-sleep-us and what fell due meanwhile
    // goes out as a batch. Spinning burned a core at high rates (and under SCHED_FIFO got the
    // thread throttled 50 ms a second); each wake-up costs µs, most of it in a VM.
    if (timeout > 0 && timeout < minSleepNs_) timeout = minSleepNs_;
    pollOnce(timeout);
    now = monoNs();
    if (now >= nextTick) {
      tick(now);
      nextTick = now + kTickNs;
    }
  }
  const int64_t end = std::min(tl_->measureEndNs, tl_->stopNs.load(std::memory_order_relaxed));
  const int64_t drainEnd = drain(end);
  finish(end, drainEnd, stats_.drainCut);
  tl_->finished.fetch_add(1, std::memory_order_release);
}

}  // namespace orchload
