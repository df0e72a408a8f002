// libFuzzer target for ResponseParser. The first byte picks how the rest is cut into reads
// (low 4 bits: a cut length 1..16, or whole) and whether responses are to HEAD requests
// (bit 4). Every response is fed in pieces: the parser must never read past what it was
// given, never consume more than offered, never loop without progress, and parse the same
// bytes the same way whether they arrive whole or split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "ResponseParser.h"

using orchload::ResponseParser;

namespace {

struct Outcome {
  std::vector<int> statuses;
  bool error = false;
  size_t consumed = 0;
};

Outcome run(const uint8_t* data, size_t size, size_t cut, bool head) {
  Outcome o;
  ResponseParser p;
  p.reset(head);
  size_t pos = 0;
  while (pos < size && !o.error) {
    size_t len = cut ? (size - pos < cut ? size - pos : cut) : size - pos;
    const char* chunk = reinterpret_cast<const char*>(data + pos);
    size_t off = 0;
    while (off < len) {
      size_t used = 0;
      ResponseParser::Result r = p.feed(chunk + off, len - off, &used);
      if (used > len - off) std::abort();
      off += used;
      if (r == ResponseParser::Result::kError) {
        o.error = true;
        break;
      }
      if (r == ResponseParser::Result::kDone) {
        o.statuses.push_back(p.status());
        if (p.status() < 200 && p.status() != 101) std::abort();  // interim answers are skipped
        p.reset(head);
        continue;
      }
      if (used == 0) std::abort();  // kNeedMore must take everything it was given
    }
    pos += off;
  }
  if (!o.error && p.finishOnEof() == ResponseParser::Result::kDone && !p.idle())
    o.statuses.push_back(p.status());
  o.consumed = pos;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t cut = data[0] & 0x0f;
  bool head = data[0] & 0x10;
  ++data;
  --size;
  Outcome whole = run(data, size, 0, head);
  Outcome split = run(data, size, cut ? cut : 1, head);
  if (!whole.error && !split.error && whole.statuses != split.statuses) std::abort();
  if (whole.error != split.error) std::abort();
  return 0;
}
