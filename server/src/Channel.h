#pragma once

#include <cstdint>

#include "Callbacks.h"
#include "orch/NonCopyable.h"

namespace orch {

class EventLoop;

// Binds one fd to the events its owner wants and the callbacks that handle
// them. A Channel does not own its fd: the owner (Acceptor, Connection,
// EventLoop for its eventfd) closes it. Loop thread only.
class Channel : NonCopyable {
 public:
  Channel(EventLoop* loop, int fd);
  ~Channel();

  void setReadCallback(EventCallback cb) { readCallback_ = std::move(cb); }
  void setWriteCallback(EventCallback cb) { writeCallback_ = std::move(cb); }

  // Called by EventLoop with the events the poller returned.
  void handleEvent();

  int fd() const { return fd_; }
  uint32_t events() const { return events_; }
  uint32_t revents() const { return revents_; }
  void setRevents(uint32_t revents) { revents_ = revents; }

  // Edge-triggered in/out/rdhup, registered once and never modified: the
  // connection hot path then needs no epoll_ctl at all.
  void enableEdgeTriggeredReadWrite();
  void enableReading();
  void disableReading();
  void enableWriting();
  void disableWriting();
  bool isReading() const;
  bool isWriting() const;

  // Unregisters from the poller (an epoll_ctl DEL).
  void remove();
  // For a fd that is about to be closed and was never dup()ed: closing it
  // drops it from the epoll set, so skip the DEL syscall.
  void forgetBeforeClose() { registered_ = false; events_ = 0; }

  // Poller bookkeeping.
  bool registered() const { return registered_; }
  void setRegistered(bool r) { registered_ = r; }

 private:
  void update();

  EventLoop* loop_;
  const int fd_;
  uint32_t events_ = 0;
  uint32_t revents_ = 0;
  bool registered_ = false;
  EventCallback readCallback_;
  EventCallback writeCallback_;
};

}  // namespace orch
