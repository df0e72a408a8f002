#pragma once

namespace orch {

// Base for classes with identity (loops, sockets, connections): copying one
// would duplicate ownership of a file descriptor or a thread.
class NonCopyable {
 public:
  NonCopyable(const NonCopyable&) = delete;
  NonCopyable& operator=(const NonCopyable&) = delete;

 protected:
  NonCopyable() = default;
  ~NonCopyable() = default;
};

}  // namespace orch
