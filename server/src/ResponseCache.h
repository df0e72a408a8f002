#pragma once

#include <ctime>
#include <string>

#include "NonCopyable.h"

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
  // Error responses always close the connection. 408/400/413/414/431/501/505
  // are pre-built; any other status gets a generic 500-class text.
  const std::string& error(int status) const;

 private:
  void rebuild();

  const std::string body_;
  std::time_t second_ = -1;
  char date_[64] = {0};
  std::string ok_[2][kNumKinds];  // [head][kind]
  std::string errors_[8];
};

}  // namespace orch
