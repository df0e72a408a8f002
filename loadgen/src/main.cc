// orchestrate-load: an HTTP/1.x load generator, closed or open loop (see README.md).
// main() parses options, resolves targets, fixes the timeline, runs one Worker per
// thread, waits for the end or SIGINT/SIGTERM, then for the drain (a second signal cuts it),
// adds the workers' Stats and prints JSON.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "Clock.h"
#include "Options.h"
#include "Report.h"
#include "Target.h"
#include "Worker.h"

using namespace orchload;

int main(int argc, char** argv) {
  Options options;
  std::string error;
  switch (parseOptions(argc, argv, &options, &error)) {
    case orch::ParseOutcome::kHelp:
      std::fputs(usage().c_str(), stdout);
      return 0;
    case orch::ParseOutcome::kVersion:
      std::printf("orchestrate-load %s\n", kVersion);
      return 0;
    case orch::ParseOutcome::kError:
      std::fprintf(stderr, "orchestrate-load: %s\n%s", error.c_str(), usage().c_str());
      return 2;
    case orch::ParseOutcome::kOk:
      break;
  }
  std::vector<Target> targets;
  if (!buildTargets(options, &targets)) return 1;

  signal(SIGPIPE, SIG_IGN);
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);  // inherited by workers: main takes them

  // Without --start-at the load begins 0.1 s from now, after the connections are open.
  const double nowWall = wallSeconds();
  const int64_t nowMono = monoNs();
  const double startEpoch = options.startAt > 0 ? options.startAt : nowWall + 0.1;
  Timeline tl;
  tl.startNs = nowMono + static_cast<int64_t>(std::llround((startEpoch - nowWall) * 1e9));
  tl.measureStartNs = tl.startNs + static_cast<int64_t>(std::llround(options.warmupS * 1e9));
  tl.measureEndNs = tl.measureStartNs + static_cast<int64_t>(std::llround(options.durationS * 1e9));

  RunInfo info;
  info.startEpoch = startEpoch;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.threads; ++i) {
    int conns = options.connections / options.threads + (i < options.connections % options.threads);
    int cpu = options.cpus.empty() ? -1 : options.cpus[static_cast<size_t>(i) % options.cpus.size()];
    info.threadCpus.push_back(cpu);
    workers.push_back(std::make_unique<Worker>(i, options.threads, conns, cpu, options, targets, &tl));
  }
  for (auto& w : workers) w->start();

  for (;;) {
    int64_t left = tl.measureEndNs - monoNs();
    if (left <= 0) break;
    left = std::min<int64_t>(left, 100'000'000);
    timespec ts{left / 1000000000LL, left % 1000000000LL};
    int sig = sigtimedwait(&stopSignals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      tl.stopNs.store(monoNs(), std::memory_order_relaxed);
      info.interrupted = true;
      for (auto& w : workers) w->wake();
      break;
    }
  }
  // The drain: the workers read answers to what is still in flight, each request up to its
  // timeout. A signal now ends it at once (what is still in flight then counts as unanswered).
  while (tl.finished.load(std::memory_order_acquire) < options.threads) {
    timespec ts{0, 20'000'000};
    int sig = sigtimedwait(&stopSignals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      tl.drainStopNs.store(monoNs(), std::memory_order_relaxed);
      for (auto& w : workers) w->wake();
      break;
    }
  }
  for (auto& w : workers) w->join();

  const int64_t end = std::min(tl.measureEndNs, tl.stopNs.load(std::memory_order_relaxed));
  info.measuredS = end > tl.measureStartNs ? static_cast<double>(end - tl.measureStartNs) / 1e9 : 0.0;
  Stats total(static_cast<size_t>(std::ceil(options.durationS)));
  for (auto& w : workers) total.add(w->stats());
  info.drainS = total.drainEndNs > end ? static_cast<double>(total.drainEndNs - end) / 1e9 : 0.0;
  if (total.firstSendNs)  // on the wall clock, so hosts can be compared (their clocks agree by NTP)
    info.firstSendEpoch = nowWall + static_cast<double>(total.firstSendNs - nowMono) / 1e9;
  std::string doc = renderReport(options, targets, total, info);
  std::fwrite(doc.data(), 1, doc.size(), stdout);
  std::fflush(stdout);
  return 0;
}
