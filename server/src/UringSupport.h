#pragma once

#include <string>

namespace orch {

// Checks, before any thread starts, that the running kernel offers what
// --arch uring uses: io_uring at all (not disabled by sysctl or seccomp),
// the opcodes (accept, recv, send, read, async cancel), provided buffer rings
// (5.19) and multishot accept and recv (5.19 / 6.0), the last by trying one
// on a socketpair. Returns false with a one-line reason in *why.
bool checkUringSupport(std::string* why);

}  // namespace orch
