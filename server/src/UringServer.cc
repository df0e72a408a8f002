#include "UringServer.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <latch>
#include <string>

#include "Socket.h"
#include "UringSupport.h"
#include "UringWorker.h"
#include "orch/Affinity.h"

namespace orch {

UringServer::UringServer(const Options& options) : options_(options) {}

UringServer::~UringServer() = default;

int UringServer::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);  // inherited by every thread
  ::signal(SIGPIPE, SIG_IGN);

  std::string why;
  if (!checkUringSupport(&why)) {
    std::fprintf(stderr, "orchestrate-server: --arch uring: %s\n", why.c_str());
    return 1;
  }
  pinCurrentThreadOrWarn(options_.acceptorCpu, "orchestrate-server", "the main thread");

  int port = options_.port;
  for (int i = 0; i < options_.threads; ++i) {
    std::string error;
    UniqueFd fd = createListenSocket(options_.bind, port, options_.backlog, true, &error);
    if (!fd.valid()) {
      std::fprintf(stderr, "orchestrate-server: %s\n", error.c_str());
      return 1;
    }
    if (i == 0) port = boundPort(fd.get());  // --port 0: the others join it
    int cpu = options_.cpus.empty() ? -1 : options_.cpus[static_cast<size_t>(i) % options_.cpus.size()];
    workers_.push_back(std::make_unique<UringWorker>(options_, std::move(fd), &limit_, cpu));
  }

  // Each thread sets up its own ring (SINGLE_ISSUER: the creating thread is
  // the only submitter) and arms its accept before the ready line.
  std::latch started(static_cast<std::ptrdiff_t>(workers_.size()));
  std::vector<std::string> errors(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    threads_.emplace_back([this, i, &started, &errors] {
      UringWorker* w = workers_[i].get();
      pinCurrentThreadOrWarn(w->cpu(), "orchestrate-server", "an IO thread");
      bool ok = w->init(&errors[i]);
      started.count_down();
      if (ok) w->run();
    });
  }
  started.wait();
  for (const std::string& e : errors) {
    if (e.empty()) continue;
    std::fprintf(stderr, "orchestrate-server: --arch uring: %s\n", e.c_str());
    for (auto& w : workers_) w->stop();
    for (auto& t : threads_) t.join();
    return 1;
  }

  std::printf("{\"event\":\"ready\",\"arch\":\"uring\",\"threads\":%d,\"port\":%d,\"pid\":%d}\n", options_.threads,
              port, static_cast<int>(::getpid()));
  std::fflush(stdout);

  siginfo_t info{};
  while (::sigwaitinfo(&mask, &info) < 0) {
  }

  for (auto& w : workers_) w->stop();
  for (auto& t : threads_) t.join();
  printStats(port);
  return 0;
}

void UringServer::printStats(int port) const {
  std::string out = "{\"event\":\"stats\",\"arch\":\"uring\",\"port\":" + std::to_string(port) + ",\"threads\":[";
  for (size_t i = 0; i < workers_.size(); ++i) {
    const UringWorker& w = *workers_[i];
    if (i > 0) out += ",";
    appendThreadStats(&out, i, w.cpu(), w.tid(), w.stats());
  }
  out += "]}\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace orch
