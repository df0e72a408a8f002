#include "Options.h"

#include "Clock.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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
    "      --cpus LIST        pin thread i to cpus[i %% n], e.g. 1,3\n"
    "  -m, --method M         request method (GET)\n"
    "  -H, --header 'N: V'    extra request header (repeatable)\n"
    "      --body TEXT        request body (sent with Content-Length)\n"
    "      --http1.0          HTTP/1.0 requests (keep-alive asked for unless --close)\n"
    "      --close            Connection: close, a new connection per request\n"
    "      --min-sleep-us U   open loop: never sleep less than U µs; sends due meanwhile\n"
    "                         go out together (30; more = fewer wake-ups, more send lag)\n"
    "      --version, --help\n"
    "Output: one JSON document on stdout (see loadgen/README.md).\n";

bool number(const char* s, double* out) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s || *end || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool integer(const char* s, int* out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end || v < 0 || v > 1000000) return false;
  *out = static_cast<int>(v);
  return true;
}

bool cpuList(const char* s, std::vector<int>* out) {
  out->clear();
  const char* p = s;
  while (*p) {
    char* end = nullptr;
    long a = std::strtol(p, &end, 10);
    if (end == p || a < 0 || a > 4095) return false;
    long b = a;
    p = end;
    if (*p == '-') {
      b = std::strtol(p + 1, &end, 10);
      if (end == p + 1 || b < a || b > 4095) return false;
      p = end;
    }
    for (long c = a; c <= b; ++c) out->push_back(static_cast<int>(c));
    if (*p == ',') ++p;
    else if (*p) return false;
  }
  return !out->empty();
}

bool bad(const char* what, const char* value) {
  std::fprintf(stderr, "orchestrate-load: %s: %s\n%s", what, value ? value : "", kUsage);
  return false;
}

}  // namespace

bool parseOptions(int argc, char** argv, Options* o, bool* exitNow) {
  *exitNow = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    auto value = [&](const char** v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    const char* v = nullptr;
    auto is = [&](const char* s, const char* l) {
      return (s && std::strcmp(a, s) == 0) || std::strcmp(a, l) == 0;
    };
    if (is(nullptr, "--help")) {
      std::fputs(kUsage, stdout);
      *exitNow = true;
      return true;
    } else if (is(nullptr, "--version")) {
      std::printf("orchestrate-load %s\n", kVersion);
      *exitNow = true;
      return true;
    } else if (is(nullptr, "--http1.0")) {
      o->http10 = true;
    } else if (is(nullptr, "--close")) {
      o->close = true;
    } else if (a[0] == '-' && a[1]) {
      if (!value(&v)) return bad("option needs a value", a);
      bool ok = true;
      if (is("-t", "--threads")) ok = integer(v, &o->threads) && o->threads >= 1 && o->threads <= 1024;
      else if (is("-c", "--connections")) ok = integer(v, &o->connections) && o->connections >= 1;
      else if (is("-R", "--rate")) ok = number(v, &o->rate) && o->rate >= 1;
      else if (is("-p", "--pipeline")) ok = integer(v, &o->pipeline) && o->pipeline >= 1 && o->pipeline <= 1024;
      else if (is("-d", "--duration")) ok = number(v, &o->durationS) && o->durationS > 0 && o->durationS <= 86400;
      else if (is("-w", "--warmup")) ok = number(v, &o->warmupS) && o->warmupS >= 0 && o->warmupS <= 86400;
      else if (is(nullptr, "--timeout")) ok = number(v, &o->timeoutS) && o->timeoutS > 0 && o->timeoutS <= 60;
      else if (is(nullptr, "--min-sleep-us")) ok = number(v, &o->minSleepUs) && o->minSleepUs >= 0 && o->minSleepUs <= 1e6;
      else if (is(nullptr, "--start-at")) ok = number(v, &o->startAt) && o->startAt >= 0;
      else if (is(nullptr, "--cpus")) ok = cpuList(v, &o->cpus);
      else if (is("-m", "--method")) {
        o->method = v;
        ok = !o->method.empty() && o->method.find_first_of(" \r\n\t") == std::string::npos;
      } else if (is("-H", "--header")) {
        std::string h = v;
        ok = h.find(':') != std::string::npos && h.find_first_of("\r\n") == std::string::npos && h[0] != ':';
        o->headers.push_back(h);
      } else if (is(nullptr, "--body")) o->body = v;
      else return bad("unknown option", a);
      if (!ok) return bad(a, v);
    } else {
      o->urls.emplace_back(a);
    }
  }
  if (o->urls.empty()) return bad("no URL given", "");
  if (o->connections < o->threads) return bad("--connections must be >= --threads", "");
  if (o->close && o->pipeline > 1) return bad("--pipeline needs keep-alive (not with --close)", "");
  if (o->startAt > 0 && o->startAt < wallSeconds() - 3600)
    return bad("--start-at is more than an hour in the past", "");
  return true;
}

}  // namespace orchload
