#include "DeferredCalls.h"

#include "Connection.h"
#include "EventLoop.h"

namespace orch {

void DeferredCalls::schedule(Connection* conn) {
  if ((conn->*scheduled_)()) return;
  (conn->*setScheduled_)(true);
  list_.push_back(conn);
  if (list_.size() == 1) loop_->deferInLoop([this] { run(); });
}

void DeferredCalls::cancel(Connection* conn) {
  (conn->*setScheduled_)(false);
  std::erase(list_, conn);
}

void DeferredCalls::run() {
  std::vector<Connection*> list;
  list.swap(list_);
  for (Connection* c : list) {
    if (!(c->*scheduled_)()) continue;  // closed meanwhile
    (c->*setScheduled_)(false);
    (c->*call_)();
  }
  // Keep the vector's capacity for the next batch.
  if (list_.empty()) {
    list.clear();
    list_.swap(list);
  }
}

}  // namespace orch
