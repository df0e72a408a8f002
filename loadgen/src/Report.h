#pragma once

#include <string>
#include <vector>

#include "Options.h"
#include "Stats.h"
#include "Target.h"

namespace orchload {

// What the run was and how it went, for the one JSON document on stdout.
struct RunInfo {
  double startEpoch = 0;  // wall-clock time the warm-up began
  double firstSendEpoch = 0;  // wall-clock time the first request actually left (0: none)
  double measuredS = 0;   // the window actually measured (shorter when interrupted)
  double drainS = 0;      // after the window, reading answers to what was still in flight
  bool interrupted = false;
  std::vector<int> threadCpus;
};

// Format history ("version"): 1 = first release. 2 = every request of the window is in the
// histograms (timed out, lost, drained, unsent too); counts.failed_by, window.drain_s and
// window.drain_cut added; unanswered = unsent + in flight when a signal cut the drain.
constexpr int kFormatVersion = 2;

// The JSON document (see loadgen/README.md for every field). Pure: no I/O.
std::string renderReport(const Options& options, const std::vector<Target>& targets,
                         const Stats& total, const RunInfo& info);

}  // namespace orchload
