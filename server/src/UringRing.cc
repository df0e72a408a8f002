#include "UringRing.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace orch {

UringRing::~UringRing() {
  // Exiting the ring cancels whatever is still in flight; only then may the
  // memory the kernel writes into go away.
  if (ringInit_) {
    if (bufRingRegistered_) io_uring_unregister_buf_ring(&ring_, kBufferGroup);
    io_uring_queue_exit(&ring_);
  }
  if (bufRing_ != nullptr) ::munmap(bufRing_, bufRingBytes_);
  if (buffers_ != nullptr) ::munmap(buffers_, kBufferCount * kBufferSize);
}

bool UringRing::init(unsigned entries, std::string* error) {
  io_uring_params params{};
  // CQ larger than SQ: one submission (multishot) yields many completions.
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring_, &params);
  if (rc == -EINVAL) {
    // Before 6.1: no DEFER_TASKRUN. Task work then runs at any syscall.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &ring_, &params);
  }
  if (rc < 0) {
    *error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  ringInit_ = true;

  bufRingBytes_ = kBufferCount * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, bufRingBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* bufs = ::mmap(nullptr, kBufferCount * kBufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
  if (mem == MAP_FAILED || bufs == MAP_FAILED) {
    if (mem != MAP_FAILED) ::munmap(mem, bufRingBytes_);
    if (bufs != MAP_FAILED) ::munmap(bufs, kBufferCount * kBufferSize);
    *error = std::string("mmap: ") + std::strerror(errno);
    return false;
  }
  bufRing_ = static_cast<io_uring_buf_ring*>(mem);
  buffers_ = static_cast<char*>(bufs);
  io_uring_buf_ring_init(bufRing_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(bufRing_);
  reg.ring_entries = kBufferCount;
  reg.bgid = kBufferGroup;
  rc = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (rc < 0) {
    *error = std::string("io_uring_register_buf_ring: ") + std::strerror(-rc);
    return false;
  }
  bufRingRegistered_ = true;
  const int mask = io_uring_buf_ring_mask(kBufferCount);
  for (unsigned i = 0; i < kBufferCount; ++i) {
    io_uring_buf_ring_add(bufRing_, buffers_ + i * kBufferSize, kBufferSize, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(bufRing_, kBufferCount);
  return true;
}

io_uring_sqe* UringRing::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (s == nullptr) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

void UringRing::recycleBuffer(uint16_t bid) {
  io_uring_buf_ring_add(bufRing_, buffers_ + static_cast<size_t>(bid) * kBufferSize, kBufferSize, bid,
                        io_uring_buf_ring_mask(kBufferCount), 0);
  io_uring_buf_ring_advance(bufRing_, 1);
}

}  // namespace orch
