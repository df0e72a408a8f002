#include "ThreadStats.h"

namespace orch {

void appendThreadStats(std::string* out, size_t index, int cpu, int tid, const ThreadStats& s) {
  *out += "{\"thread\":" + std::to_string(index) + ",\"cpu\":" + std::to_string(cpu) +
          ",\"tid\":" + std::to_string(tid) + ",\"connections\":" + std::to_string(s.connections) +
          ",\"requests\":" + std::to_string(s.requests) + ",\"bytes_in\":" + std::to_string(s.bytesIn) +
          ",\"bytes_out\":" + std::to_string(s.bytesOut) + "}";
}

}  // namespace orch
