#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <sys/socket.h>

#include "HttpParser.h"
#include "HttpProcessing.h"
#include "Options.h"
#include "ResponseCache.h"
#include "SimulatedWork.h"
#include "Socket.h"
#include "ThreadStats.h"
#include "orch/NonCopyable.h"

namespace orch {

// The transport-independent half of a connection, the base of Connection
// (epoll) and UringConnection (io_uring), so both architectures serve HTTP
// with one copy of the logic: the request stream's states, input buffering,
// serving (processRequests), back-pressure, the header (408), idle and linger
// timeouts, and the lingering close. A transport owns the IO and implements
// the four hooks below, bound at compile time (CRTP: Transport derives from
// HttpSession<Transport>): no virtual calls on the hot path, and no vptr,
// whose UBSan check needs a free fd (a pipe) and so fails falsely at EMFILE.
// Owns the socket; used only on its worker's thread.
template <class Transport>
class HttpSession : NonCopyable {
 public:
  void checkTimeouts(int64_t nowMs);  // idle, header (408) and linger limits
  void forceClose() { close(); }
  // Whether the worker has this connection on its flush list.
  bool flushScheduled() const { return flushScheduled_; }
  void setFlushScheduled(bool v) { flushScheduled_ = v; }
  // The slot in the worker's ConnectionTable.
  size_t index() const { return index_; }
  void setIndex(size_t i) { index_ = i; }

 protected:
  enum class State {
    kOpen,      // serving requests
    kClosing,   // last response queued; close once it is written
    kDraining,  // write side shut; discarding input until EOF or deadline
    kClosed,
  };

  HttpSession(int fd, const Options& options, const ResponseCache& responses, const SimulatedWork& work,
              ThreadStats& stats, int64_t nowMs);
  ~HttpSession() = default;  // never deleted through the base

  // The transport's hooks (members of Transport, befriending this class):
  //   size_t pendingOutput() const  response bytes not yet sent (out_ included)
  //   void scheduleFlush()          out_ grew: send it after this batch
  //   void stopReading()            readPaused_ was just set
  //   void closeTransport()         state_ is now kClosed: let go of the socket

  // Bytes received at `now`: served, kept while reading is paused, or
  // discarded after the last request.
  void onInput(const char* data, size_t len, int64_t now);
  void onSent(size_t len, int64_t now);  // counts them, and activity
  // Serves the requests kept in in_ after a pause; the transport then reads
  // again if it should.
  void resumeInput(int64_t now);
  void onPeerEof();
  void afterLastResponse(int64_t now);  // close now, or linger if the client may still send
  void pauseReading();                  // back-pressure: until the output drains
  void close();
  bool hasPendingOutput() const { return pending() > 0; }

  static constexpr size_t kHighWater = 256 * 1024;    // output that pauses reading
  static constexpr size_t kKeepCapacity = 64 * 1024;  // shrink output buffers beyond this

  UniqueFd fd_;
  std::string out_;  // responses not yet handed to the kernel
  State state_ = State::kOpen;
  bool readPaused_ = false;

 private:
  // Serves complete requests from [data, data+len) (which may live in in_)
  // and keeps the unparsed rest in in_.
  void serve(const char* data, size_t len, int64_t now);
  // Parses and queues responses; returns bytes consumed. Stops early when
  // kHighWater bytes of output are waiting.
  size_t process(const char* data, size_t len, int64_t now);
  void queueError(int status);
  Transport& transport() { return static_cast<Transport&>(*this); }
  size_t pending() const { return static_cast<const Transport&>(*this).pendingOutput(); }

  static constexpr int64_t kLingerMs = 1000;

  const Options& options_;
  const ResponseCache& responses_;
  const SimulatedWork& work_;
  ThreadStats& stats_;
  HttpParser parser_;
  std::string in_;  // unconsumed input: a partial head or unserved requests
  size_t index_ = 0;
  bool flushScheduled_ = false;
  bool lingerOnClose_ = false;
  int64_t lastActiveMs_;
  int64_t requestStartMs_ = -1;  // first byte of an unfinished request
  int64_t drainDeadlineMs_ = 0;
};

// ---- the template's definitions

template <class Transport>
HttpSession<Transport>::HttpSession(int fd, const Options& options, const ResponseCache& responses,
                                    const SimulatedWork& work, ThreadStats& stats, int64_t nowMs)
    : fd_(fd),
      options_(options),
      responses_(responses),
      work_(work),
      stats_(stats),
      parser_(options.limits),
      lastActiveMs_(nowMs) {}

template <class Transport>
void HttpSession<Transport>::onInput(const char* data, size_t len, int64_t now) {
  stats_.bytesIn += len;
  lastActiveMs_ = now;
  if (state_ == State::kOpen) {
    if (readPaused_) {
      in_.append(data, len);  // arrived before the transport stopped reading
    } else if (in_.empty()) {
      serve(data, len, now);
    } else {
      in_.append(data, len);
      serve(in_.data(), in_.size(), now);
    }
  } else if (state_ == State::kClosing) {
    lingerOnClose_ = true;  // more input after the last request: discard
  }
}

template <class Transport>
void HttpSession<Transport>::onSent(size_t len, int64_t now) {
  stats_.bytesOut += len;
  lastActiveMs_ = now;
}

template <class Transport>
void HttpSession<Transport>::resumeInput(int64_t now) {
  readPaused_ = false;
  if (!in_.empty()) serve(in_.data(), in_.size(), now);
}

template <class Transport>
void HttpSession<Transport>::serve(const char* data, size_t len, int64_t now) {
  const bool inBuffer = !in_.empty() && data == in_.data();
  size_t used = process(data, len, now);
  data += used;
  len -= used;
  if (state_ == State::kClosed) return;
  if (state_ != State::kOpen) len = 0;  // the request stream is over
  // Unserved requests wait in in_, the rest in the kernel, until the
  // responses drain.
  if (len > 0 && pending() >= kHighWater) pauseReading();
  if (inBuffer) {
    in_.erase(0, in_.size() - len);
  } else {
    in_.assign(data, len);
  }
}

template <class Transport>
size_t HttpSession<Transport>::process(const char* data, size_t len, int64_t now) {
  const size_t before = out_.size();
  const size_t waiting = pending();
  ProcessResult r = processRequests(parser_, responses_, work_, stats_, data, len, &out_,
                                    waiting < kHighWater ? kHighWater - waiting : 0);
  if (r.lastResponse) {
    state_ = State::kClosing;
    if (r.linger) lingerOnClose_ = true;
  }
  if (r.completed) requestStartMs_ = -1;
  if (state_ == State::kOpen && parser_.inRequest() && requestStartMs_ < 0) requestStartMs_ = now;
  if (out_.size() != before) transport().scheduleFlush();
  return r.consumed;
}

template <class Transport>
void HttpSession<Transport>::pauseReading() {
  if (readPaused_) return;
  readPaused_ = true;
  transport().stopReading();
}

template <class Transport>
void HttpSession<Transport>::onPeerEof() {
  // The peer finished sending. Pending responses still go out; there is
  // nothing left to linger for.
  lingerOnClose_ = false;
  if (hasPendingOutput() && state_ != State::kDraining) {
    state_ = State::kClosing;
    return;
  }
  close();
}

template <class Transport>
void HttpSession<Transport>::afterLastResponse(int64_t now) {
  if (!lingerOnClose_) {
    close();
    return;
  }
  // The client may still be sending (a body we refused, pipelined requests
  // after "Connection: close"). Closing with unread data would send an RST
  // that can destroy our response in flight, so shut the write side and
  // read until EOF or the linger deadline.
  ::shutdown(fd_.get(), SHUT_WR);
  state_ = State::kDraining;
  drainDeadlineMs_ = now + kLingerMs;
  in_.clear();
  readPaused_ = false;
}

template <class Transport>
void HttpSession<Transport>::queueError(int status) {
  ++stats_.requests;
  state_ = State::kClosing;
  lingerOnClose_ = true;
  out_ += responses_.error(status, parser_.errorForHead());
  transport().scheduleFlush();
}

template <class Transport>
void HttpSession<Transport>::checkTimeouts(int64_t now) {
  switch (state_) {
    case State::kOpen:
      if (!readPaused_ && requestStartMs_ >= 0 && now - requestStartMs_ >= options_.headerTimeoutMs) {
        if (hasPendingOutput()) {
          close();
        } else {
          queueError(408);
        }
      } else if (now - lastActiveMs_ >= options_.idleTimeoutMs) {
        close();
      }
      break;
    case State::kClosing:
      if (now - lastActiveMs_ >= options_.idleTimeoutMs) close();
      break;
    case State::kDraining:
      if (now >= drainDeadlineMs_) close();
      break;
    case State::kClosed:
      break;
  }
}

template <class Transport>
void HttpSession<Transport>::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  transport().closeTransport();
}

}  // namespace orch
