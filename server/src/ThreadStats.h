#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace orch {

// Counters of one IO thread. Written only by that thread; read by the main
// thread after joining it (the join orders the accesses).
struct ThreadStats {
  uint64_t connections = 0;  // connections this thread took on
  uint64_t requests = 0;     // requests answered (200s and errors)
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
};

// Appends thread `index`'s object of the stats line (every architecture's):
// {"thread","cpu","tid","connections","requests","bytes_in","bytes_out"}.
void appendThreadStats(std::string* out, size_t index, int cpu, int tid, const ThreadStats& s);

}  // namespace orch
