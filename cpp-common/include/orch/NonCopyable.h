#pragma once

namespace orch {

// Base for classes with identity (loops, sockets, connections, workers):
// copying one would duplicate ownership of a file descriptor or a thread.
// No copies, and so no implicit moves either.
class NonCopyable {
 public:
  NonCopyable(const NonCopyable&) = delete;
  NonCopyable& operator=(const NonCopyable&) = delete;

 protected:
  NonCopyable() = default;
  ~NonCopyable() = default;
};

}  // namespace orch
