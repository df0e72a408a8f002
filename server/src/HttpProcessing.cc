#include "HttpProcessing.h"

#include "ResponseCache.h"
#include "SimulatedWork.h"
#include "ThreadStats.h"

namespace orch {

ProcessResult processRequests(HttpParser& parser, const ResponseCache& responses, const SimulatedWork& work,
                              ThreadStats& stats,
                              const char* data, size_t len, std::string* out, size_t budget) {
  ProcessResult r;
  const size_t before = out->size();
  size_t off = 0;
  while (off < len) {
    size_t used = 0;
    HttpParser::Result res = parser.parse(data + off, len - off, &used);
    off += used;
    // Interim 100 before this request's final response (and only once the
    // head is known to be acceptable, so a 413/417 goes out instead).
    if (parser.takeContinue()) *out += ResponseCache::kContinue;
    if (res == HttpParser::Result::kNeedMore) {
      if (used == 0 || off == len) break;
      continue;
    }
    ++stats.requests;
    if (res == HttpParser::Result::kError) {
      *out += responses.error(parser.errorStatus(), parser.errorForHead());
      r.lastResponse = true;
      r.linger = true;  // unread input may follow
      break;
    }
    r.completed = true;
    if (work.enabled()) work.perform();  // the handler's time, before its response
    if (!parser.keepAlive()) {
      *out += responses.ok(ResponseCache::kClose, parser.isHead());
      r.lastResponse = true;
      r.linger = off < len;  // it sent more after "close"
      break;
    }
    *out += responses.ok(parser.version() == 10 ? ResponseCache::kKeepAlive10 : ResponseCache::kKeepAlive11,
                         parser.isHead());
    if (out->size() - before >= budget) break;
  }
  r.consumed = off;
  return r;
}

}  // namespace orch
