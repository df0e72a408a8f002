#include "SimulatedWork.h"

#include <time.h>

namespace orch {
namespace {

int64_t threadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Steps the optimiser cannot drop (the result feeds the next call's seed).
uint64_t spin(uint64_t steps, uint64_t seed) {
  volatile uint64_t x = seed;
  for (uint64_t i = 0; i < steps; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

constexpr int64_t kChunkNs = 250;

}  // namespace

SimulatedWork::SimulatedWork(int64_t us) : ns_(us > 0 ? us * 1000 : 0) {
  if (!enabled()) return;
  // Calibrate: steps per kChunkNs of CPU, from the best of a few 1 ms samples.
  constexpr uint64_t kSteps = 20000;
  int64_t best = 0;
  for (int i = 0; i < 5; ++i) {
    int64_t t0 = threadCpuNs();
    spin(kSteps, static_cast<uint64_t>(i));
    int64_t t = threadCpuNs() - t0;
    if (t > 0 && (best == 0 || t < best)) best = t;
  }
  uint64_t perChunk = best > 0 ? static_cast<uint64_t>(kSteps * kChunkNs / best) : 1;
  chunk_ = perChunk > 0 ? perChunk : 1;
}

void SimulatedWork::perform() const {
  if (!enabled()) return;
  const int64_t end = threadCpuNs() + ns_;
  uint64_t seed = 1;
  while (threadCpuNs() < end) seed = spin(chunk_, seed);
}

}  // namespace orch
