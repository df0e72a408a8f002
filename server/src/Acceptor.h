#pragma once

#include <cstdint>
#include <memory>

#include "Callbacks.h"
#include "Socket.h"
#include "orch/NonCopyable.h"

namespace orch {

class Channel;
class EventLoop;

// Accepts connections on one listening socket and passes each new fd to the
// callback. Owns the listening fd and a reserve fd for EMFILE. Lives on, and
// is used only from, its loop's thread.
//
// EMFILE/ENFILE: level-triggered epoll would report the pending connection
// forever (a busy spin), so the Acceptor closes its reserve fd, accepts and
// closes the connection (the client sees a clean close rather than a hang),
// and re-opens the reserve. If that fails too (another thread took the fd),
// it stops watching the listener for kPauseMs.
class Acceptor : NonCopyable {
 public:
  Acceptor(EventLoop* loop, UniqueFd listenFd, NewConnectionCallback cb);
  ~Acceptor();

  void listen();  // start watching the listener
  uint64_t accepted() const { return accepted_; }
  uint64_t refused() const { return refused_; }

  static constexpr int kPauseMs = 100;

 private:
  void handleRead();
  void pause();

  EventLoop* loop_;
  UniqueFd listenFd_;
  UniqueFd reserveFd_;
  std::unique_ptr<Channel> channel_;
  NewConnectionCallback newConnection_;
  uint64_t accepted_ = 0;
  uint64_t refused_ = 0;  // dropped for lack of file descriptors
  uint64_t pauseTimer_ = 0;  // pending re-enable timer, cancelled by ~Acceptor
};

}  // namespace orch
