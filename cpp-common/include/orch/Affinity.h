#pragma once

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace orch {

// Pins the calling thread to one CPU. Returns 0, or the error number
// pthread_setaffinity_np gave (it returns it; it does not set errno); a CPU
// outside [0, CPU_SETSIZE) is EINVAL.
[[nodiscard]] inline int pinCurrentThread(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set);
}

// Pins the calling thread (cpu < 0: leaves it unpinned) and says on stderr,
// as `program: warning: cannot pin WHO to cpu N: reason`, when the kernel
// refused. True if the thread runs where it was asked to (or was not asked).
inline bool pinCurrentThreadOrWarn(int cpu, const char* program, const char* who) {
  if (cpu < 0) return true;
  int err = pinCurrentThread(cpu);
  if (err == 0) return true;
  std::fprintf(stderr, "%s: warning: cannot pin %s to cpu %d: %s\n", program, who, cpu, std::strerror(err));
  return false;
}

}  // namespace orch
