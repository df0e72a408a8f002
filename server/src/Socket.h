#pragma once

#include <string>
#include <utility>

namespace orch {

// Owns one file descriptor and closes it on destruction. Movable, not
// copyable. Not thread-safe (like an int).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Creates a non-blocking listening TCP socket on bindAddress:port (IPv4 or
// IPv6 literal). reusePort sets SO_REUSEPORT before bind. On failure returns
// an invalid fd and a readable reason in *error.
UniqueFd createListenSocket(const std::string& bindAddress, int port, int backlog, bool reusePort,
                            std::string* error);

// The port a bound socket got (useful after binding port 0); -1 on error.
int boundPort(int fd);

}  // namespace orch
