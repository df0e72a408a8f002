#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "orch/NonCopyable.h"

namespace orch {

// One io_uring plus one provided-buffer ring (group kBufferGroup) that
// multishot receives pick their buffers from. Owns the ring, the buffer ring
// and the buffers' memory. Created, used and destroyed on one thread (the
// ring is set up SINGLE_ISSUER | DEFER_TASKRUN where the kernel allows).
//
// liburing 2.3 has no io_uring_setup_buf_ring(), so the buffer ring is
// mapped and registered here (io_uring_register_buf_ring, Linux 5.19+).
class UringRing : NonCopyable {
 public:
  static constexpr int kBufferGroup = 0;
  static constexpr unsigned kBufferCount = 256;       // power of two
  static constexpr size_t kBufferSize = 16 * 1024;    // per multishot recv completion

  UringRing() = default;
  ~UringRing();

  // False with *error set when the kernel refuses (the caller reports it).
  bool init(unsigned entries, std::string* error);

  io_uring* ring() { return &ring_; }
  // An SQE, submitting the queue first if it is full. Never null.
  io_uring_sqe* sqe();
  // Hands buffer `bid` back to the kernel (after its data was used).
  void recycleBuffer(uint16_t bid);
  const char* buffer(uint16_t bid) const { return buffers_ + static_cast<size_t>(bid) * kBufferSize; }

 private:
  io_uring ring_{};
  bool ringInit_ = false;
  io_uring_buf_ring* bufRing_ = nullptr;  // mmap'ed, shared with the kernel
  size_t bufRingBytes_ = 0;
  char* buffers_ = nullptr;               // mmap'ed kBufferCount * kBufferSize
  bool bufRingRegistered_ = false;
};

}  // namespace orch
