#include "Worker.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "Acceptor.h"
#include "Connection.h"
#include "EventLoop.h"
#include "Options.h"

namespace orch {

Worker::Worker(EventLoop* loop, const Options& options, ConnectionLimit* limit)
    : loop_(loop),
      options_(options),
      limit_(limit),
      responses_(options.body),
      work_(options.workUs),
      readBuffer_(new char[kReadBufferSize]),
      resumes_(loop, &Connection::resumeScheduled, &Connection::setResumeScheduled, &Connection::resume),
      flushes_(loop, &Connection::flushScheduled, &Connection::setFlushScheduled, &Connection::sendPending) {}

Worker::~Worker() = default;

void Worker::init() {
  loop_->assertInLoopThread();
  // One timer per thread drives the Date refresh and every timeout sweep, so
  // connections never touch timers themselves. A quarter of the shortest
  // timeout bounds the lateness of a timeout; 250 ms bounds the Date's.
  int64_t shortest = std::min(options_.idleTimeoutMs, options_.headerTimeoutMs);
  int64_t interval = std::clamp<int64_t>(shortest / 4, 5, 250);
  loop_->runEvery(interval, [this] { onTick(); });
}

void Worker::startAcceptor(UniqueFd listenFd) {
  loop_->assertInLoopThread();
  acceptor_ = std::make_unique<Acceptor>(loop_, std::move(listenFd), [this](int fd) {
    if (limit_->admit(fd)) newConnection(fd);
  });
  acceptor_->listen();
}

void Worker::newConnection(int fd) {
  loop_->assertInLoopThread();
  ++stats_.connections;
  connections_.add(std::make_unique<Connection>(this, fd))->start();
}

void Worker::connectionClosed(Connection* conn) {
  std::unique_ptr<Connection> owned = connections_.take(conn);
  limit_->release();
  graveyard_.push_back(std::move(owned));
  if (graveyard_.size() == 1) {
    // Runs after this batch of events: no syscall, unlike queueInLoop.
    loop_->deferInLoop([this] { graveyard_.clear(); });
  }
}

void Worker::scheduleResume(Connection* conn) { resumes_.schedule(conn); }

void Worker::cancelResume(Connection* conn) { resumes_.cancel(conn); }

void Worker::scheduleFlush(Connection* conn) { flushes_.schedule(conn); }

void Worker::cancelFlush(Connection* conn) { flushes_.cancel(conn); }

void Worker::onTick() {
  responses_.refresh(std::time(nullptr));
  connections_.checkTimeouts(loop_->nowMs());
}

void Worker::shutdown() {
  loop_->assertInLoopThread();
  acceptor_.reset();
  connections_.closeAll();
  graveyard_.clear();
  loop_->quit();
}

}  // namespace orch
