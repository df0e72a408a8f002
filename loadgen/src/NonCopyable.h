#pragma once

namespace orchload {

// Base for classes with identity (sockets, loops, workers): no copies, no moves.
class NonCopyable {
 public:
  NonCopyable(const NonCopyable&) = delete;
  NonCopyable& operator=(const NonCopyable&) = delete;

 protected:
  NonCopyable() = default;
  ~NonCopyable() = default;
};

}  // namespace orchload
