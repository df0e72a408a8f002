#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "Histogram.h"

namespace orchload {

// Why a connection or a request failed; each kind has its own counter.
enum class ErrorKind { kConnect, kReset, kRead, kWrite, kTimeout, kClosed, kProtocol, kCount };
const char* errorName(ErrorKind kind);

// What one worker measured. Owned and written only by its worker thread; the main thread
// reads it after join() and adds the workers' Stats together (exact: counts add).
struct Stats {
  explicit Stats(size_t seconds) : perSecond(seconds, 0) {}

  void add(const Stats& other);

  Histogram latency;   // from the intended send time (closed loop: the actual send)
  Histogram service;   // from the actual send
  Histogram sendLag;   // actual send - intended (the wait for a free connection included)
  // Open loop, each request of the window that was sent: actual send - max(intended, when a
  // connection was free). The client's own lag: a wait for a busy connection is the server's.
  Histogram clientSendLag;
  // Requests whose intended time fell in the window, and what became of them. Every one of
  // them is in the histograms: requests = responses + failed + unanswered = latency.count().
  int64_t requests = 0;     // intended in the window
  int64_t sent = 0;         // of those, written to a socket
  int64_t responses = 0;    // of those, answered (in the window or in the drain after it)
  int64_t unanswered = 0;   // of those, never sent, or in flight when a signal cut the drain
                            // (counted as drain end - intended)
  int64_t unsent = 0;       // of the unanswered, never sent (no free connection)
  int64_t failed = 0;       // of those, timed out or lost with their connection
  int64_t failedBy[static_cast<int>(ErrorKind::kCount)] = {};  // the failed, by kind
  int64_t queued = 0;       // of those, had to wait for a free connection
  int64_t maxQueue = 0;     // most requests ever waiting at once (whole run)
  int64_t status[6] = {};   // responses by class: [1] 1xx .. [5] 5xx, [0] other
  int64_t errors[static_cast<int>(ErrorKind::kCount)] = {};  // whole run, warm-up included
  int64_t connects = 0;     // successful connections (whole run)
  int64_t firstSendNs = 0;  // monotonic time the first request left (0: none did)
  int64_t drainEndNs = 0;   // monotonic time the drain after the window ended
  bool drainCut = false;    // a signal ended the drain before every request was settled
  std::vector<int64_t> perSecond;  // responses completed in each second of the window
};

}  // namespace orchload
