#include "Options.h"

#include "Clock.h"

namespace orchload {

const char* const kVersion = "0.1.0";

namespace {

const char* const kUsage =
    "usage: orchestrate-load [options] URL [URL...]\n"
    "  -t, --threads N        worker threads, one epoll loop each (1)\n"
    "  -c, --connections N    connections in total, split over threads (10)\n"
    "  -R, --rate R           open loop: R requests/s in total; absent = closed loop\n"
    "  -p, --pipeline N       requests in flight per connection (1)\n"
    "  -d, --duration S       measurement window in seconds (10)\n"
    "  -w, --warmup S         warm-up before the window, excluded from histograms (0)\n"
    "      --timeout S        a request unanswered this long (from its send) is timed out (5);\n"
    "                         also bounds the drain after the window\n"
    "      --start-at EPOCH   start the warm-up at this wall-clock time (default: now)\n"
    "      --cpus LIST        pin thread i to cpus[i % n], e.g. 1,3\n"
    "  -m, --method M         request method (GET)\n"
    "  -H, --header 'N: V'    extra request header (repeatable)\n"
    "      --body TEXT        request body (sent with Content-Length)\n"
    "      --http1.0          HTTP/1.0 requests (keep-alive asked for unless --close)\n"
    "      --close            Connection: close, a new connection per request\n"
    "      --min-sleep-us U   open loop: never sleep less than U µs; sends due meanwhile\n"
    "                         go out together (30; more = fewer wake-ups, more send lag)\n"
    "      --version, --help\n"
    "Output: one JSON document on stdout (see loadgen/README.md).\n";

}  // namespace

std::string usage() { return kUsage; }

orch::ParseOutcome parseOptions(int argc, char** argv, Options* o, std::string* error) {
  using orch::ParseOutcome;
  auto fail = [&](const std::string& why) {
    *error = why;
    return ParseOutcome::kError;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help") return ParseOutcome::kHelp;
    if (arg == "--version") return ParseOutcome::kVersion;
    if (arg == "--http1.0") {
      o->http10 = true;
      continue;
    }
    if (arg == "--close") {
      o->close = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      o->urls.push_back(arg);
      continue;
    }
    std::string value;
    if (!orch::nextOption(argc, argv, &i, true, &arg, &value)) {
      return fail("option " + arg + " needs a value");
    }
    auto is = [&](const char* s, const char* l) { return (s && arg == s) || arg == l; };
    auto check = [&](bool ok, const char* want) {
      return ok ? ParseOutcome::kOk : fail("bad value for " + arg + ": '" + value + "' (" + want + ")");
    };
    ParseOutcome got = ParseOutcome::kOk;
    if (is("-t", "--threads")) {
      got = check(orch::parseInt(value, 1, 1024, &o->threads), "1..1024");
    } else if (is("-c", "--connections")) {
      got = check(orch::parseInt(value, 1, 1000000, &o->connections), "1..1000000");
    } else if (is("-R", "--rate")) {
      got = check(orch::parseNumber(value, 1, 1e12, &o->rate), "at least 1 request/s");
    } else if (is("-p", "--pipeline")) {
      got = check(orch::parseInt(value, 1, 1024, &o->pipeline), "1..1024");
    } else if (is("-d", "--duration")) {
      got = check(orch::parseNumber(value, 0, 86400, &o->durationS) && o->durationS > 0, "(0, 86400] s");
    } else if (is("-w", "--warmup")) {
      got = check(orch::parseNumber(value, 0, 86400, &o->warmupS), "[0, 86400] s");
    } else if (is(nullptr, "--timeout")) {
      got = check(orch::parseNumber(value, 0, 60, &o->timeoutS) && o->timeoutS > 0, "(0, 60] s");
    } else if (is(nullptr, "--min-sleep-us")) {
      got = check(orch::parseNumber(value, 0, 1e6, &o->minSleepUs), "[0, 1e6] us");
    } else if (is(nullptr, "--start-at")) {
      got = check(orch::parseNumber(value, 0, 1e11, &o->startAt), "epoch seconds");
    } else if (is(nullptr, "--cpus")) {
      got = check(orch::parseCpuList(value, 4096, &o->cpus), "CPU numbers, e.g. 1,3 or 0-3");
    } else if (is("-m", "--method")) {
      o->method = value;
      got = check(!value.empty() && value.find_first_of(" \r\n\t") == std::string::npos, "a token");
    } else if (is("-H", "--header")) {
      got = check(value.find(':') != std::string::npos && value.find_first_of("\r\n") == std::string::npos &&
                      value[0] != ':',
                  "'Name: value'");
      o->headers.push_back(value);
    } else if (is(nullptr, "--body")) {
      o->body = value;
    } else {
      return fail("unknown option " + arg);
    }
    if (got != ParseOutcome::kOk) return got;
  }
  if (o->urls.empty()) return fail("no URL given");
  if (o->connections < o->threads) return fail("--connections must be >= --threads");
  if (o->close && o->pipeline > 1) return fail("--pipeline needs keep-alive (not with --close)");
  if (o->startAt > 0 && o->startAt < wallSeconds() - 3600) {
    return fail("--start-at is more than an hour in the past");
  }
  return ParseOutcome::kOk;
}

}  // namespace orchload
