#include "Worker.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "Acceptor.h"
#include "Connection.h"
#include "EventLoop.h"
#include "Options.h"

namespace orch {

Worker::Worker(EventLoop* loop, const Options& options, std::atomic<int64_t>* live)
    : loop_(loop),
      options_(options),
      live_(live),
      responses_(options.body),
      readBuffer_(new char[kReadBufferSize]) {}

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
    if (live_ != nullptr && live_->fetch_add(1) >= options_.maxConnections) {
      live_->fetch_sub(1);
      ::close(fd);  // over the limit: a prompt close beats a hang
      return;
    }
    newConnection(fd);
  });
  acceptor_->listen();
}

void Worker::newConnection(int fd) {
  loop_->assertInLoopThread();
  ++stats_.connections;
  connections_.push_back(std::make_unique<Connection>(this, fd, connections_.size()));
  connections_.back()->start();
}

void Worker::connectionClosed(Connection* conn) {
  size_t i = conn->index();
  std::unique_ptr<Connection> owned = std::move(connections_[i]);
  if (i + 1 != connections_.size()) {
    connections_[i] = std::move(connections_.back());
    connections_[i]->setIndex(i);
  }
  connections_.pop_back();
  if (live_ != nullptr) live_->fetch_sub(1);
  graveyard_.push_back(std::move(owned));
  if (graveyard_.size() == 1) {
    // Runs after this batch of events: no syscall, unlike queueInLoop.
    loop_->deferInLoop([this] { graveyard_.clear(); });
  }
}

void Worker::scheduleResume(Connection* conn) {
  if (conn->resumeScheduled()) return;
  conn->setResumeScheduled(true);
  resumeList_.push_back(conn);
  if (resumeList_.size() == 1) loop_->deferInLoop([this] { runResumes(); });
}

void Worker::cancelResume(Connection* conn) {
  conn->setResumeScheduled(false);
  std::erase(resumeList_, conn);
}

void Worker::runResumes() {
  std::vector<Connection*> list;
  list.swap(resumeList_);
  for (Connection* c : list) {
    // An earlier resume in this list may have closed c; close() cancels,
    // which clears the flag.
    if (!c->resumeScheduled()) continue;
    c->setResumeScheduled(false);
    c->resume();
  }
}

void Worker::scheduleFlush(Connection* conn) {
  conn->setFlushScheduled(true);
  flushList_.push_back(conn);
  if (flushList_.size() == 1) loop_->deferInLoop([this] { runFlushes(); });
}

void Worker::cancelFlush(Connection* conn) {
  conn->setFlushScheduled(false);
  std::erase(flushList_, conn);
}

void Worker::runFlushes() {
  std::vector<Connection*> list;
  list.swap(flushList_);
  for (Connection* c : list) {
    if (!c->flushScheduled()) continue;  // closed meanwhile
    c->setFlushScheduled(false);
    c->sendPending();
  }
  // Keep the vector's capacity for the next batch.
  if (flushList_.empty()) {
    list.clear();
    flushList_.swap(list);
  }
}

void Worker::onTick() {
  responses_.refresh(std::time(nullptr));
  int64_t now = loop_->nowMs();
  // Backwards: a close swaps the last connection into the current slot,
  // which has then already been checked.
  for (size_t i = connections_.size(); i-- > 0;) {
    if (i < connections_.size()) connections_[i]->checkTimeouts(now);
  }
}

void Worker::shutdown() {
  loop_->assertInLoopThread();
  acceptor_.reset();
  while (!connections_.empty()) connections_.back()->forceClose();
  graveyard_.clear();
  loop_->quit();
}

}  // namespace orch
