#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "orch/NonCopyable.h"

namespace orch {

// One IO thread's open connections (Connection or UringConnection, both
// HttpSessions), each knowing its slot (index()) for O(1) swap-removal.
// Used only on that thread.
template <class Conn>
class ConnectionTable : NonCopyable {
 public:
  Conn* add(std::unique_ptr<Conn> conn) {
    conn->setIndex(slots_.size());
    slots_.push_back(std::move(conn));
    return slots_.back().get();
  }

  // Takes conn out of the table; the last connection moves into its slot.
  std::unique_ptr<Conn> take(Conn* conn) {
    const size_t i = conn->index();
    std::unique_ptr<Conn> owned = std::move(slots_[i]);
    if (i + 1 != slots_.size()) {
      slots_[i] = std::move(slots_.back());
      slots_[i]->setIndex(i);
    }
    slots_.pop_back();
    return owned;
  }

  // Backwards: a close takes the connection out, moving the last one into
  // the current slot, which has then already been checked.
  void checkTimeouts(int64_t nowMs) {
    for (size_t i = slots_.size(); i-- > 0;) {
      if (i < slots_.size()) slots_[i]->checkTimeouts(nowMs);
    }
  }

  // Each close takes its connection out of the table.
  void closeAll() {
    while (!slots_.empty()) slots_.back()->forceClose();
  }

 private:
  std::vector<std::unique_ptr<Conn>> slots_;
};

}  // namespace orch
