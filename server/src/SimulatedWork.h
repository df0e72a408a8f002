#pragma once

#include <cstdint>

namespace orch {

// --work-us N: N microseconds of busy CPU per request, done in the request
// path before the response is queued, to simulate application work (a
// handler that computes for N us). Measured on the thread's own CPU clock,
// so time the thread spends descheduled does not count as work done; the
// arithmetic between clock reads is sized at construction to ~1/4 us so the
// clock's own cost stays small. N = 0 costs one branch per request.
// Immutable after construction; perform() is safe from any thread.
class SimulatedWork {
 public:
  explicit SimulatedWork(int64_t us);

  bool enabled() const { return ns_ > 0; }
  int64_t us() const { return ns_ / 1000; }
  // Burns ns_ of this thread's CPU time.
  void perform() const;

 private:
  int64_t ns_;
  uint64_t chunk_ = 1;  // arithmetic steps between two clock reads
};

}  // namespace orch
