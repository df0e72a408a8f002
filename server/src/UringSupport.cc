#include "UringSupport.h"

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "Socket.h"
#include "UringRing.h"

namespace orch {

namespace {

struct OpName {
  int op;
  const char* name;
};

constexpr OpName kOps[] = {
    {IORING_OP_ACCEPT, "accept"}, {IORING_OP_RECV, "recv"},          {IORING_OP_SEND, "send"},
    {IORING_OP_READ, "read"},     {IORING_OP_ASYNC_CANCEL, "cancel"},
};

}  // namespace

bool checkUringSupport(std::string* why) {
  io_uring_probe* probe = io_uring_get_probe();
  if (probe == nullptr) {
    // io_uring_setup failed: ENOSYS (not built), EPERM (io_uring_disabled
    // sysctl, seccomp, container policy).
    io_uring ring{};
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc == 0) io_uring_queue_exit(&ring);
    *why = std::string("io_uring is not available: ") + std::strerror(rc < 0 ? -rc : ENOSYS) +
           " (kernel without io_uring, or kernel.io_uring_disabled / seccomp forbids it)";
    return false;
  }
  for (const OpName& o : kOps) {
    if (!io_uring_opcode_supported(probe, o.op)) {
      io_uring_free_probe(probe);
      *why = std::string("the kernel's io_uring lacks the ") + o.name + " operation";
      return false;
    }
  }
  io_uring_free_probe(probe);

  UringRing ring;
  std::string error;
  if (!ring.init(8, &error)) {
    *why = "io_uring set-up failed (" + error + "; provided buffer rings need Linux 5.19+)";
    return false;
  }
  if ((ring.ring()->features & IORING_FEAT_NODROP) == 0 || (ring.ring()->features & IORING_FEAT_EXT_ARG) == 0) {
    *why = "the kernel's io_uring lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG (Linux 5.11+)";
    return false;
  }
  // Multishot recv with a provided buffer: one byte through a socketpair.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    *why = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  UniqueFd a(sv[0]);
  UniqueFd b(sv[1]);
  io_uring_sqe* sqe = ring.sqe();
  io_uring_prep_recv_multishot(sqe, a.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = UringRing::kBufferGroup;
  io_uring_submit(ring.ring());
  if (::write(b.get(), "x", 1) != 1) {
    *why = std::string("write: ") + std::strerror(errno);
    return false;
  }
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{};
  ts.tv_sec = 2;
  int rc = io_uring_wait_cqe_timeout(ring.ring(), &cqe, &ts);
  if (rc < 0) {
    *why = std::string("io_uring multishot recv test: ") + std::strerror(-rc);
    return false;
  }
  int res = cqe->res;
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  io_uring_cqe_seen(ring.ring(), cqe);
  if (res != 1 || !more) {
    *why = std::string("the kernel's io_uring lacks multishot recv with provided buffers (Linux 6.0+): ") +
           (res < 0 ? std::strerror(-res) : "no IORING_CQE_F_MORE");
    return false;
  }
  return true;
}

}  // namespace orch
