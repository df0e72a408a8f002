#include "Server.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <latch>
#include <string>

#include "Acceptor.h"
#include "Channel.h"
#include "EventLoop.h"
#include "EventLoopThread.h"
#include "EventLoopThreadPool.h"
#include "Worker.h"
#include "orch/Affinity.h"
#ifdef ORCH_HAVE_URING
#include "UringServer.h"
#endif

namespace orch {

Server::Server(Options options) : options_(std::move(options)) {}

Server::~Server() = default;

bool Server::openListeners(std::vector<UniqueFd>* listeners, int* port) {
  const bool reusePort = options_.arch == Arch::kReusePort;
  const int count = reusePort ? options_.threads : 1;
  int bindPort = options_.port;
  for (int i = 0; i < count; ++i) {
    std::string error;
    UniqueFd fd = createListenSocket(options_.bind, bindPort, options_.backlog, reusePort, &error);
    if (!fd.valid()) {
      std::fprintf(stderr, "orchestrate-server: %s\n", error.c_str());
      return false;
    }
    // With --port 0 the first bind picks the port; the others join it.
    if (i == 0) bindPort = boundPort(fd.get());
    listeners->push_back(std::move(fd));
  }
  *port = bindPort;
  return true;
}

int Server::run() {
  if (options_.arch == Arch::kUring) {
#ifdef ORCH_HAVE_URING
    UringServer uring(options_);
    return uring.run();
#else
    std::fprintf(stderr, "orchestrate-server: --arch uring: this binary was built without liburing "
                         "(apt-get install liburing-dev, then rebuild)\n");
    return 1;
#endif
  }
  // Signals are taken through a signalfd on the main loop; block them before
  // any thread exists so every thread inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  pinCurrentThreadOrWarn(options_.acceptorCpu, "orchestrate-server", "the main thread");

  std::vector<UniqueFd> listeners;
  if (!openListeners(&listeners, &port_)) return 1;

  mainLoop_ = std::make_unique<EventLoop>();
  signalFd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signalFd_.valid()) {
    std::perror("signalfd");
    return 1;
  }
  signalChannel_ = std::make_unique<Channel>(mainLoop_.get(), signalFd_.get());
  signalChannel_->setReadCallback([this] {
    signalfd_siginfo info{};
    while (::read(signalFd_.get(), &info, sizeof(info)) == sizeof(info)) {
    }
    mainLoop_->quit();
  });
  signalChannel_->enableReading();

  pool_ = std::make_unique<EventLoopThreadPool>(options_.threads, options_.cpus);
  pool_->start(nullptr);
  for (size_t i = 0; i < pool_->size(); ++i) {
    workers_.push_back(std::make_unique<Worker>(pool_->loop(i), options_, &limit_));
  }

  // Finish each Worker's setup on its own thread; the ready line waits for
  // all of them, so every listener is being watched when it is printed.
  std::latch started(static_cast<std::ptrdiff_t>(workers_.size()));
  const bool reusePort = options_.arch == Arch::kReusePort;
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    int listenFd = reusePort ? listeners[i].release() : -1;
    w->loop()->runInLoop([w, listenFd, &started] {
      w->init();
      if (listenFd >= 0) w->startAcceptor(UniqueFd(listenFd));
      started.count_down();
    });
  }
  started.wait();

  if (!reusePort) {
    acceptor_ = std::make_unique<Acceptor>(mainLoop_.get(), std::move(listeners[0]),
                                           [this](int fd) { handOff(fd); });
    acceptor_->listen();
  }

  std::printf("{\"event\":\"ready\",\"arch\":\"%s\",\"threads\":%d,\"port\":%d,\"pid\":%d}\n",
              archName(options_.arch), options_.threads, port_, static_cast<int>(::getpid()));
  std::fflush(stdout);

  mainLoop_->loop();

  // Stop accepting first, then let each IO thread close its connections
  // (queued after any hand-offs still in flight) and quit.
  if (acceptor_) {
    acceptorAccepted_ = acceptor_->accepted();
    acceptor_.reset();
  }
  for (auto& w : workers_) {
    Worker* wp = w.get();
    wp->loop()->runInLoop([wp] { wp->shutdown(); });
  }
  pool_->joinAll();
  printStats();
  return 0;
}

void Server::handOff(int fd) {
  if (!limit_.admit(fd)) return;
  Worker* w = workers_[next_].get();
  next_ = (next_ + 1) % workers_.size();
  // Wakes the IO thread only if it has no wake-up pending already.
  w->loop()->queueInLoop([w, fd] { w->newConnection(fd); });
}

void Server::printStats() const {
  std::string out = "{\"event\":\"stats\",\"arch\":\"";
  out += archName(options_.arch);
  out += "\",\"port\":" + std::to_string(port_) + ",\"threads\":[";
  for (size_t i = 0; i < workers_.size(); ++i) {
    const EventLoopThread& t = pool_->thread(i);
    if (i > 0) out += ",";
    appendThreadStats(&out, i, t.cpu(), t.tid(), workers_[i]->stats());
  }
  out += "]";
  if (options_.arch == Arch::kMainSub) {
    out += ",\"acceptor\":{\"connections\":" + std::to_string(acceptorAccepted_) +
           ",\"cpu\":" + std::to_string(options_.acceptorCpu) + ",\"tid\":" + std::to_string(mainLoop_->tid()) +
           "}";
  }
  out += "}\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace orch
