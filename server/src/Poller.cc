#include "Poller.h"

#include "EPollPoller.h"

namespace orch {

Poller::~Poller() = default;

std::unique_ptr<Poller> Poller::newDefaultPoller() { return std::make_unique<EPollPoller>(); }

}  // namespace orch
