#pragma once

#include <cstdint>
#include <string>

#include "Channel.h"
#include "HttpParser.h"
#include "NonCopyable.h"
#include "Socket.h"

namespace orch {

class Worker;

// One accepted TCP connection speaking HTTP/1.x. Owned by its Worker
// (unique_ptr) and used only on the Worker's loop thread; owns its socket.
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
class Connection : NonCopyable {
 public:
  Connection(Worker* worker, int fd, size_t index);
  ~Connection();

  void start();                       // register for reading
  void checkTimeouts(int64_t nowMs);  // idle, header (408) and linger limits
  void forceClose();
  // Serves buffered requests and reads again after a pause (back-pressure
  // or the per-event read budget).
  void resume();
  bool resumeScheduled() const { return resumeScheduled_; }
  void setResumeScheduled(bool v) { resumeScheduled_ = v; }
  // Sends queued output; called by the Worker after the batch and on EPOLLOUT.
  void sendPending();
  bool flushScheduled() const { return flushScheduled_; }
  void setFlushScheduled(bool v) { flushScheduled_ = v; }

  size_t index() const { return index_; }
  void setIndex(size_t i) { index_ = i; }

 private:
  enum class State {
    kOpen,      // serving requests
    kClosing,   // last response queued; close once it is written
    kDraining,  // write side shut; discarding input until EOF or deadline
    kClosed,
  };

  void handleRead();
  void handleWrite();
  // Serves complete requests from [data, data+len) (which may live in in_)
  // and keeps the unparsed rest in in_.
  void serve(const char* data, size_t len);
  // Parses and queues responses; returns bytes consumed. Stops early when
  // kHighWater bytes of output are waiting.
  size_t process(const char* data, size_t len);
  void queueError(int status);
  void afterLastResponse();  // close now, or linger if the client may still send
  void onPeerEof();
  void close();

  bool hasPendingOutput() const { return outOffset_ < out_.size(); }

  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr int64_t kLingerMs = 1000;
  static constexpr int kMaxReadsPerEvent = 8;  // then yield to other sockets
  static constexpr size_t kKeepCapacity = 64 * 1024;  // shrink out_ beyond this

  Worker* const worker_;
  UniqueFd fd_;
  Channel channel_;
  HttpParser parser_;
  std::string in_;   // unconsumed input: a partial head or unserved requests
  std::string out_;  // unsent output, from outOffset_
  size_t outOffset_ = 0;
  size_t index_;
  State state_ = State::kOpen;
  bool readPaused_ = false;   // back-pressure: waiting for out_ to drain
  bool resumeScheduled_ = false;
  bool flushScheduled_ = false;
  bool lingerOnClose_ = false;
  int64_t lastActiveMs_ = 0;
  int64_t requestStartMs_ = -1;  // first byte of an unfinished request
  int64_t drainDeadlineMs_ = 0;
};

}  // namespace orch
