// libFuzzer target for HttpParser (build: see server/README.md).
//
// Properties checked on every input:
//  * no crash, no sanitizer report, `consumed` never exceeds the input;
//  * the parser is split-invariant: feeding the input whole and feeding it in
//    pieces (sizes taken from the first input byte) yields the same sequence
//    of completed requests and the same final error status;
//  * the head is never buffered beyond the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "HttpParser.h"

namespace {

struct Outcome {
  // 1 per completed request (+keepAlive*2 +head*4), 100 per "100 Continue"
  // owed, or -status.
  std::vector<int> events;
  bool operator==(const Outcome&) const = default;
};

// Mimics Connection: keep unconsumed bytes, append new ones, parse again.
Outcome run(const uint8_t* data, size_t size, size_t chunk) {
  orch::HttpLimits limits;
  limits.maxHeadBytes = 512;  // small limits reach the limit paths quickly
  limits.maxHeaders = 8;
  limits.maxRequestLineBytes = 256;
  limits.maxBodyBytes = 300;
  limits.maxChunkLineBytes = 64;
  limits.maxTrailerBytes = 128;
  orch::HttpParser parser(limits);
  Outcome out;
  std::string pending;
  size_t pos = 0;
  while (pos < size) {
    size_t n = std::min(chunk, size - pos);
    pending.append(reinterpret_cast<const char*>(data) + pos, n);
    pos += n;
    size_t off = 0;
    for (;;) {
      size_t used = 0;
      auto r = parser.parse(pending.data() + off, pending.size() - off, &used);
      if (used > pending.size() - off) std::abort();
      off += used;
      if (parser.takeContinue()) out.events.push_back(100);
      if (r == orch::HttpParser::Result::kError) {
        out.events.push_back(-parser.errorStatus());
        return out;
      }
      if (r == orch::HttpParser::Result::kComplete) {
        out.events.push_back(1 + (parser.keepAlive() ? 2 : 0) + (parser.isHead() ? 4 : 0));
        continue;
      }
      if (used == 0 || off == pending.size()) break;
    }
    pending.erase(0, off);
    // Unconsumed bytes are at most one unfinished head (a chunk-size or
    // trailer line is shorter).
    if (pending.size() > limits.maxHeadBytes + chunk) std::abort();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + data[0] % 17;
  Outcome whole = run(data + 1, size - 1, size);
  Outcome split = run(data + 1, size - 1, chunk);
  if (!(whole == split)) std::abort();
  return 0;
}
