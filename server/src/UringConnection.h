#pragma once

#include <liburing.h>

#include <cstdint>
#include <string>

#include "HttpSession.h"

namespace orch {

class UringWorker;

// One accepted TCP connection of the uring architecture; the HTTP side
// (states, serving, timeouts, lingering close) is HttpSession's, as for
// Connection. Owned by its UringWorker (unique_ptr) and used only on that
// thread.
//
// IO: one multishot recv (provided buffers) stays armed for the connection's
// life; each completion is parsed straight from the kernel-filled buffer,
// which is then handed back. Responses collect in out_ and leave in one
// send per connection per batch of completions (UringWorker::runFlushes);
// at most one send is in flight, from sending_, which is not touched until
// it completes.
//
// Back-pressure: once kHighWater bytes of responses wait, the multishot recv
// is cancelled (data already received waits in the session's input) and
// re-armed when the output has drained.
//
// Lifetime: close() cancels the recv and any send in flight and closes the
// fd (the ring keeps the socket until they complete); the object lives until its last operation
// has completed (UringWorker keeps it meanwhile), because the kernel's
// completions carry its address.
class UringConnection final : public HttpSession<UringConnection> {
 public:
  UringConnection(UringWorker* worker, int fd);
  ~UringConnection();

  void start();  // arm the multishot recv
  void onRecv(const io_uring_cqe* cqe);
  void onSend(int res);
  // Queues a send of the waiting output unless one is in flight; called by
  // the Worker before it submits.
  void submitSend();
  bool inFlight() const { return recvArmed_ || sendInFlight_; }

 private:
  friend class HttpSession<UringConnection>;  // calls the hooks

  void armRecv();
  void cancel(uint64_t userData);
  void resumeReading();

  size_t pendingOutput() const { return sending_.size() - sendOffset_ + out_.size(); }
  void scheduleFlush();
  void stopReading();
  void closeTransport();

  UringWorker* const worker_;
  std::string sending_;  // the send in flight (stable until it completes)
  size_t sendOffset_ = 0;
  bool recvArmed_ = false;
  bool sendInFlight_ = false;
};

}  // namespace orch
