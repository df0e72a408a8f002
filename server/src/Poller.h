#pragma once

#include <memory>
#include <vector>

#include "orch/NonCopyable.h"

namespace orch {

class Channel;
class EventLoop;

// I/O multiplexing interface; owned by exactly one EventLoop and used only on
// its thread.
class Poller : NonCopyable {
 public:
  using ChannelList = std::vector<Channel*>;

  virtual ~Poller();

  // Waits up to timeoutMs (-1: forever) and appends ready channels, with their
  // revents set, to *active.
  virtual void poll(int timeoutMs, ChannelList* active) = 0;
  // Adds, modifies or (events()==0) deletes the channel's registration.
  virtual void updateChannel(Channel* channel) = 0;
  virtual void removeChannel(Channel* channel) = 0;

  static std::unique_ptr<Poller> newDefaultPoller();
};

}  // namespace orch
