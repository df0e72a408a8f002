#pragma once

#include <cstdint>
#include <ctime>

namespace orchload {

// Monotonic nanoseconds (vDSO, ~20 ns): every timestamp on the hot path.
inline int64_t monoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Wall-clock seconds since the epoch: only to translate --start-at.
inline double wallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace orchload
