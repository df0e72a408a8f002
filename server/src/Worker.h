#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ConnectionLimit.h"
#include "ConnectionTable.h"
#include "DeferredCalls.h"
#include "ResponseCache.h"
#include "SimulatedWork.h"
#include "Socket.h"
#include "ThreadStats.h"
#include "orch/NonCopyable.h"

namespace orch {

class Acceptor;
class Connection;
class EventLoop;
struct Options;

// Everything one IO thread owns: its connections (unique_ptr, destroyed after
// the current batch of events), in reuseport mode its own Acceptor, the
// per-thread response cache, read/write scratch buffers and counters.
// Created on the main thread, then used only on its loop's thread, except
// stats(), which is read after the thread has been joined.
class Worker : NonCopyable {
 public:
  // limit: the server's --max-connections admission, shared by every thread.
  Worker(EventLoop* loop, const Options& options, ConnectionLimit* limit);
  ~Worker();

  // Loop thread only from here on.
  void init();                               // timers; call first
  void startAcceptor(UniqueFd listenFd);     // reuseport: own listener
  void newConnection(int fd);                // takes ownership of fd
  void shutdown();                           // close everything, quit the loop

  // Used by Connection.
  EventLoop* loop() const { return loop_; }
  const Options& options() const { return options_; }
  const ResponseCache& responses() const { return responses_; }
  const SimulatedWork& work() const { return work_; }
  char* readBuffer() { return readBuffer_.get(); }
  static constexpr size_t kReadBufferSize = 64 * 1024;
  ThreadStats& stats() { return stats_; }
  void connectionClosed(Connection* conn);
  // Calls conn->resume() after the current batch of events (no syscall).
  void scheduleResume(Connection* conn);
  void cancelResume(Connection* conn);
  // Calls conn->sendPending() after the current batch of events.
  void scheduleFlush(Connection* conn);
  void cancelFlush(Connection* conn);

  const ThreadStats& stats() const { return stats_; }

 private:
  void onTick();

  EventLoop* const loop_;
  const Options& options_;
  ConnectionLimit* const limit_;
  ResponseCache responses_;
  SimulatedWork work_;
  std::unique_ptr<char[]> readBuffer_;
  ThreadStats stats_;
  std::unique_ptr<Acceptor> acceptor_;
  ConnectionTable<Connection> connections_;
  // Closed during this iteration; freed after the event batch, because a
  // later event of the same batch may still point at them.
  std::vector<std::unique_ptr<Connection>> graveyard_;
  DeferredCalls resumes_;
  DeferredCalls flushes_;
};

}  // namespace orch
