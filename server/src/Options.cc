#include "Options.h"

#include <sched.h>

#include <string>

namespace orch {

const char* archName(Arch arch) {
  switch (arch) {
    case Arch::kReusePort:
      return "reuseport";
    case Arch::kMainSub:
      return "main-sub";
    case Arch::kUring:
      return "uring";
  }
  return "?";
}

namespace {

constexpr size_t kMaxBodySize = 64u << 20;

bool cpuAllowed(int64_t cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0 || cpu >= CPU_SETSIZE || ::sched_getaffinity(0, sizeof(set), &set) != 0) return false;
  return CPU_ISSET(static_cast<int>(cpu), &set);
}

}  // namespace

std::string usage() {
  return "usage: orchestrate-server --arch reuseport|main-sub|uring --threads N [--cpus 0,2,4]\n"
         "         [--acceptor-cpu C] [--bind 127.0.0.1] [--port 8000] [--backlog 4096]\n"
         "         [--body TEXT | --body-size N] [--idle-timeout-ms 60000]\n"
         "         [--header-timeout-ms 10000] [--max-connections N] [--max-body-bytes 1048576]\n"
         "         [--work-us N]  (N us of busy CPU per request: simulated application work)\n";
}

ParseOutcome parseOptions(int argc, char** argv, Options* o, std::string* error) {
  bool haveBody = false;
  bool haveBodySize = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return ParseOutcome::kHelp;
    std::string value;
    if (!nextOption(argc, argv, &i, true, &arg, &value)) {
      *error = "option " + arg + " needs a value";
      return ParseOutcome::kError;
    }
    auto bad = [&](const std::string& why) {
      *error = "bad value for " + arg + ": '" + value + "' (" + why + ")";
      return ParseOutcome::kError;
    };
    int64_t n = 0;
    if (arg == "--arch") {
      if (value == "reuseport") o->arch = Arch::kReusePort;
      else if (value == "main-sub") o->arch = Arch::kMainSub;
      else if (value == "uring") o->arch = Arch::kUring;
      else return bad("reuseport, main-sub or uring");
    } else if (arg == "--threads") {
      if (!parseInt(value, 1, 1024, &n)) return bad("1..1024");
      o->threads = static_cast<int>(n);
    } else if (arg == "--cpus") {
      if (!parseCpuList(value, CPU_SETSIZE, &o->cpus)) return bad("CPU numbers, e.g. 0,2,4 or 0-3");
      for (int cpu : o->cpus) {
        if (!cpuAllowed(cpu)) return bad("cpu " + std::to_string(cpu) + " is not available to this process");
      }
    } else if (arg == "--acceptor-cpu") {
      if (!parseInt(value, 0, CPU_SETSIZE - 1, &n) || !cpuAllowed(n)) return bad("an available CPU");
      o->acceptorCpu = static_cast<int>(n);
    } else if (arg == "--bind") {
      if (value.empty()) return bad("an IP address");
      o->bind = value;
    } else if (arg == "--port") {
      if (!parseInt(value, 0, 65535, &n)) return bad("0..65535");
      o->port = static_cast<int>(n);
    } else if (arg == "--backlog") {
      if (!parseInt(value, 1, 1 << 20, &n)) return bad("1..1048576");
      o->backlog = static_cast<int>(n);
    } else if (arg == "--body") {
      if (value.size() > kMaxBodySize) return bad("at most 64 MiB");
      o->body = value;
      haveBody = true;
    } else if (arg == "--body-size") {
      if (!parseInt(value, 0, static_cast<int64_t>(kMaxBodySize), &n)) return bad("0..67108864");
      // A recognisable, printable pattern ending in a newline.
      std::string body(static_cast<size_t>(n), 'x');
      if (!body.empty()) body.back() = '\n';
      o->body = std::move(body);
      haveBodySize = true;
    } else if (arg == "--idle-timeout-ms") {
      if (!parseInt(value, 1, 86400000, &n)) return bad("1..86400000");
      o->idleTimeoutMs = n;
    } else if (arg == "--header-timeout-ms") {
      if (!parseInt(value, 1, 86400000, &n)) return bad("1..86400000");
      o->headerTimeoutMs = n;
    } else if (arg == "--max-connections") {
      if (!parseInt(value, 0, 1 << 30, &n)) return bad("0..2^30, 0 = no limit");
      o->maxConnections = n;
    } else if (arg == "--work-us") {
      if (!parseInt(value, 0, 1000000, &n)) return bad("0..1000000 microseconds");
      o->workUs = n;
    } else if (arg == "--max-body-bytes") {
      if (!parseInt(value, 0, int64_t{1} << 40, &n)) return bad("0..2^40");
      o->limits.maxBodyBytes = static_cast<uint64_t>(n);
    } else {
      *error = "unknown option " + arg;
      return ParseOutcome::kError;
    }
  }
  if (haveBody && haveBodySize) {
    *error = "--body and --body-size are exclusive";
    return ParseOutcome::kError;
  }
  return ParseOutcome::kOk;
}

}  // namespace orch
