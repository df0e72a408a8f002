#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ResponseParser.h"
#include "Stats.h"
#include "orch/NonCopyable.h"
#include "orch/UniqueFd.h"

namespace orchload {

class Worker;
struct Target;

// One request on the wire: when it should have been sent and when it was.
struct InFlight {
  int64_t intendedNs;
  int64_t sentNs;
};

// One client TCP connection (reconnected in place after a close or an error).
// Owned by its Worker (unique_ptr); lives and is used only on that worker's thread.
// Writes go straight to the socket; EPOLLOUT is watched only while bytes are pending,
// and responses completed in one read are answered with one write (batch).
class Connection : orch::NonCopyable {
 public:
  enum class State { kClosed, kConnecting, kOpen };

  Connection(Worker* worker, const Target* target, int depth);
  ~Connection();

  void connect(int64_t now);
  // Queues one request; written at once unless inside a read batch.
  void send(int64_t intendedNs, int64_t now);
  void handleEvent(uint32_t events);
  // Drops the connection: requests in flight are reported lost with `kind`.
  void fail(ErrorKind kind, int64_t now);

  State state() const { return state_; }
  bool canSend() const { return state_ == State::kOpen && !closing_ && count_ < depth_; }
  int inFlight() const { return count_; }
  const InFlight& inFlightAt(int i) const { return ring_[(head_ + i) % depth_]; }
  int64_t retryAtNs = 0;    // when to reconnect after a failed connect (worker's business)
  int64_t backoffNs = 0;
  bool inFreeList = false;  // worker's free-list bookkeeping
  int64_t freeSinceNs = 0;  // when it last became free to send (worker's bookkeeping)

 private:
  void finishConnect(int64_t now);
  void connectFailed(int64_t now);
  void handleRead();
  void flush(int64_t now);
  void closeSocket();
  void updateEvents();

  Worker* const worker_;
  const Target* const target_;
  const int depth_;
  orch::UniqueFd fd_;
  State state_ = State::kClosed;
  bool batching_ = false;
  bool closing_ = false;     // the server said Connection: close; no more requests here
  bool wantWrite_ = false;
  std::vector<InFlight> ring_;  // requests in flight, oldest at head_
  int head_ = 0;
  int count_ = 0;
  std::string out_;          // bytes not yet accepted by the kernel
  size_t outOff_ = 0;
  ResponseParser parser_;
};

}  // namespace orchload
