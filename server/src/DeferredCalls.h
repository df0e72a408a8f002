#pragma once

#include <vector>

#include "orch/NonCopyable.h"

namespace orch {

class Connection;
class EventLoop;

// Connections waiting for one call (Connection::resume, ::sendPending) after
// the current batch of events: a deferred loop task, no syscall. The
// connection's own flag says it is on the list: schedule() sets it, cancel()
// clears it, and run() skips a connection whose flag was cleared meanwhile
// (an earlier call of the same batch closed it). Loop thread only.
class DeferredCalls : NonCopyable {
 public:
  using Get = bool (Connection::*)() const;
  using Set = void (Connection::*)(bool);
  using Call = void (Connection::*)();

  DeferredCalls(EventLoop* loop, Get scheduled, Set setScheduled, Call call)
      : loop_(loop), scheduled_(scheduled), setScheduled_(setScheduled), call_(call) {}

  void schedule(Connection* conn);  // once: a scheduled connection stays where it is
  void cancel(Connection* conn);

 private:
  void run();

  EventLoop* const loop_;
  const Get scheduled_;
  const Set setScheduled_;
  const Call call_;
  std::vector<Connection*> list_;  // live connections only
};

}  // namespace orch
