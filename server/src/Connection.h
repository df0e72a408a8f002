#pragma once

#include <cstdint>

#include "Channel.h"
#include "HttpSession.h"

namespace orch {

class Worker;

// One accepted TCP connection speaking HTTP/1.x over epoll; the HTTP side
// (states, serving, timeouts) is HttpSession's. Owned by its Worker
// (unique_ptr) and used only on the Worker's loop thread.
//
// The hot path, per readiness event: one recv() into the thread's 64 KiB
// buffer, parse every complete request in it and append the pre-built
// responses to out_. The sends happen after the whole batch of events has
// been read (Worker::runFlushes): one send() per connection per batch, and
// the responses leave back to back, so a client blocked in epoll_wait is
// woken once for many of them rather than once each. The socket is registered once, edge-triggered,
// for in/out/rdhup and never modified (no epoll_ctl per request, and no
// level-triggered re-poll of every ready socket on the next epoll_wait). A
// recv that did not fill the buffer drained the socket, so no read is issued
// just to see EAGAIN; new data raises a new edge. EPOLLRDHUP tells a short
// read that the peer's FIN is already queued.
//
// Back-pressure: once kHighWater bytes of responses are waiting, reading
// stops (a flag, no syscall); the data stays in the kernel until the
// output drains and resume() reads it.
class Connection final : public HttpSession<Connection> {
 public:
  Connection(Worker* worker, int fd);
  ~Connection();

  void start();  // register for reading
  // Serves buffered requests and reads again after a pause (back-pressure
  // or the per-event read budget).
  void resume();
  bool resumeScheduled() const { return resumeScheduled_; }
  void setResumeScheduled(bool v) { resumeScheduled_ = v; }
  // Sends queued output; called by the Worker after the batch and on EPOLLOUT.
  void sendPending();

 private:
  friend class HttpSession<Connection>;  // calls the hooks

  void handleRead();
  void handleWrite();

  size_t pendingOutput() const { return out_.size() - outOffset_; }
  void scheduleFlush();
  void stopReading() {}  // the flag is enough: the data waits in the kernel
  void closeTransport();

  static constexpr int kMaxReadsPerEvent = 8;  // then yield to other sockets

  Worker* const worker_;
  Channel channel_;
  size_t outOffset_ = 0;  // out_ is sent from here
  bool resumeScheduled_ = false;
};

}  // namespace orch
