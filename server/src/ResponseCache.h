#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "orch/NonCopyable.h"

namespace orch {

// Pre-built responses, byte for byte, including the Date header. One per IO
// thread, so refreshing the Date (at most once a second, from the thread's
// timer) needs no lock and the hot path only copies or writes a string.
// Not thread-safe.
class ResponseCache : NonCopyable {
 public:
  enum Kind {
    kKeepAlive11,  // HTTP/1.1 request, persistent: no Connection header
    kKeepAlive10,  // HTTP/1.0 request with "Connection: keep-alive"
    kClose,        // "Connection: close"
    kNumKinds
  };

  explicit ResponseCache(std::string body);

  // Rebuilds every response if the wall-clock second changed.
  void refresh(std::time_t now);

  const std::string& ok(Kind kind, bool head) const { return ok_[head ? 1 : 0][kind]; }
  // Error responses always close the connection. Every status the parser or
  // a timeout produces is pre-built (405 with Allow); any other gets a 500.
  // head: the same headers without the body (RFC 9110 9.3.2).
  const std::string& error(int status, bool head) const;
  // The interim response to "Expect: 100-continue".
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

 private:
  void rebuild();

  const std::string body_;
  std::time_t second_ = -1;
  char date_[64] = {0};
  std::string ok_[2][kNumKinds];  // [head][kind]
  static constexpr size_t kNumErrors = 10;
  std::string errors_[2][kNumErrors];  // [head][status index]
};

}  // namespace orch
