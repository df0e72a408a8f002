#pragma once

#include <liburing.h>

#include <cstdint>
#include <string>

#include "HttpParser.h"
#include "NonCopyable.h"
#include "Socket.h"

namespace orch {

class UringWorker;

// One accepted TCP connection of the uring architecture, speaking the same
// HTTP/1.x as Connection (same parser, responses, timeouts, lingering close).
// Owned by its UringWorker (unique_ptr) and used only on that thread; owns
// its socket.
//
// IO: one multishot recv (provided buffers) stays armed for the connection's
// life; each completion is parsed straight from the kernel-filled buffer,
// which is then handed back. Responses collect in out_ and leave in one
// send per connection per batch of completions (UringWorker::runFlushes);
// at most one send is in flight, from sending_, which is not touched until
// it completes.
//
// Back-pressure: once kHighWater bytes of responses wait, the multishot recv
// is cancelled (data already received waits in in_) and re-armed when the
// output has drained.
//
// Lifetime: close() cancels the recv and any send in flight and closes the
// fd (the ring keeps the socket until they complete); the object lives until its last operation
// has completed (UringWorker keeps it meanwhile), because the kernel's
// completions carry its address.
class UringConnection : NonCopyable {
 public:
  UringConnection(UringWorker* worker, int fd, size_t index);
  ~UringConnection();

  void start();  // arm the multishot recv
  void onRecv(const io_uring_cqe* cqe);
  void onSend(int res);
  // Queues a send of the waiting output unless one is in flight; called by
  // the Worker before it submits.
  void submitSend();
  void checkTimeouts(int64_t nowMs);  // idle, header (408) and linger limits
  void forceClose() { close(); }

  bool closed() const { return state_ == State::kClosed; }
  bool inFlight() const { return recvArmed_ || sendInFlight_; }
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

  void armRecv();
  void cancel(uint64_t userData);
  void serve(const char* data, size_t len);
  size_t process(const char* data, size_t len);
  void pauseReading();
  void resumeReading();
  void queueError(int status);
  void afterLastResponse();
  void onPeerEof();
  void close();
  void scheduleFlush();

  size_t pendingOutput() const { return sending_.size() - sendOffset_ + out_.size(); }
  bool hasPendingOutput() const { return pendingOutput() > 0; }

  static constexpr size_t kHighWater = 256 * 1024;
  static constexpr int64_t kLingerMs = 1000;
  static constexpr size_t kKeepCapacity = 64 * 1024;

  UringWorker* const worker_;
  UniqueFd fd_;
  HttpParser parser_;
  std::string in_;       // unconsumed input: a partial head or unserved requests
  std::string out_;      // responses not yet handed to the kernel
  std::string sending_;  // the send in flight (stable until it completes)
  size_t sendOffset_ = 0;
  size_t index_;
  State state_ = State::kOpen;
  bool recvArmed_ = false;
  bool sendInFlight_ = false;
  bool readPaused_ = false;
  bool flushScheduled_ = false;
  bool lingerOnClose_ = false;
  int64_t lastActiveMs_ = 0;
  int64_t requestStartMs_ = -1;
  int64_t drainDeadlineMs_ = 0;
};

}  // namespace orch
