#pragma once
// Every callback type of the server in one place (as in muduo).

#include <cstdint>
#include <functional>

namespace orch {

class Connection;
class EventLoop;

// A task run on a loop thread (runInLoop / queueInLoop / timers).
using Functor = std::function<void()>;

// A Channel's reaction to readiness; the Channel passes no arguments, the
// owner reads Channel::revents() if it needs them.
using EventCallback = std::function<void()>;

// The Acceptor hands over a freshly accepted, non-blocking socket. The callee
// owns the fd from then on and must close it.
using NewConnectionCallback = std::function<void(int fd)>;

// Run once on an EventLoopThread's own thread, after its EventLoop exists and
// before it starts looping.
using ThreadInitCallback = std::function<void(EventLoop*)>;

}  // namespace orch
