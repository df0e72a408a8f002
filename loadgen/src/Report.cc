#include "Report.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

namespace orchload {

namespace {

void appendString(std::string* out, const std::string& s) {
  *out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      *out += buf;
    } else {
      *out += c;
    }
  }
  *out += '"';
}

std::string str(const std::string& s) {
  std::string out;
  appendString(&out, s);
  return out;
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string integer(long long v) { return std::to_string(v); }

std::string epoch(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

std::string boolean(bool v) { return v ? "true" : "false"; }

// A JSON object of (name, already rendered value) members, in order.
using Members = std::vector<std::pair<const char*, std::string>>;

std::string object(const Members& members) {
  std::string out = "{";
  for (const auto& [name, value] : members) {
    if (out.size() > 1) out += ',';
    appendString(&out, name);
    out += ':';
    out += value;
  }
  return out + "}";
}

template <class Items, class Render>
std::string array(const Items& items, Render render) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += render(item);
  }
  return out + "]";
}

std::string histogram(const Histogram& h) {
  std::string out;
  h.appendJson(&out);
  return out;
}

// Self-check: the client kept up if it delivered >= 99% of the target and its p99 send
// lag stayed within max(1 ms, 10% of the interval between requests). The send lag is the
// client's own (client_send_lag): counted from when a connection was free, not from the
// intended time, as waiting for a busy connection is the server's slowness.
std::string rate(const Options& o, const Stats& s, const RunInfo& info) {
  long long completed = 0;
  for (long long v : s.perSecond) completed += v;
  const double achieved = info.measuredS > 0 ? static_cast<double>(completed) / info.measuredS : 0.0;
  const size_t fullSeconds = std::min(s.perSecond.size(), static_cast<size_t>(info.measuredS + 1e-9));
  const std::vector<long long> perSecond(s.perSecond.begin(), s.perSecond.begin() + static_cast<long>(fullSeconds));
  std::string target = "null", sustained = "null", lagLimit = "null";
  if (o.openLoop()) {
    const double lagLimitUs = std::max(1000.0, 0.1 * 1e6 / o.rate);
    target = num(o.rate);
    sustained = boolean(info.measuredS > 0 && achieved >= 0.99 * o.rate &&
                        static_cast<double>(s.clientSendLag.valueAtPercentile(99)) <= lagLimitUs);
    lagLimit = num(lagLimitUs);
  }
  return object({{"target", target}, {"achieved", num(achieved)}, {"sustained", sustained},
                 {"send_lag_limit_us", lagLimit}, {"per_second", array(perSecond, integer)}});
}

std::string counts(const Stats& s) {
  Members members = {
      {"requests", integer(s.requests)}, {"sent", integer(s.sent)}, {"responses", integer(s.responses)},
      {"unanswered", integer(s.unanswered)}, {"unsent", integer(s.unsent)}, {"failed", integer(s.failed)},
      {"queued", integer(s.queued)}, {"max_queue", integer(s.maxQueue)}, {"connects", integer(s.connects)},
      {"non_2xx", integer(s.responses - s.status[2])}};
  const char* const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
  Members status, errors, failedBy;
  for (int i = 0; i < 6; ++i) status.emplace_back(classes[i], integer(s.status[i]));
  for (int i = 0; i < static_cast<int>(ErrorKind::kCount); ++i) {
    errors.emplace_back(errorName(static_cast<ErrorKind>(i)), integer(s.errors[i]));
    failedBy.emplace_back(errorName(static_cast<ErrorKind>(i)), integer(s.failedBy[i]));
  }
  members.emplace_back("failed_by", object(failedBy));
  members.emplace_back("status", object(status));
  members.emplace_back("errors", object(errors));
  return object(members);
}

}  // namespace

std::string renderReport(const Options& o, const std::vector<Target>& targets, const Stats& s,
                         const RunInfo& info) {
  const std::string parameters = object({
      {"mode", str(o.openLoop() ? "open" : "closed")}, {"rate", o.openLoop() ? num(o.rate) : "null"},
      {"threads", integer(o.threads)}, {"connections", integer(o.connections)},
      {"pipeline", integer(o.pipeline)}, {"duration_s", num(o.durationS)}, {"warmup_s", num(o.warmupS)},
      {"timeout_s", num(o.timeoutS)}, {"method", str(o.method)}, {"http", str(o.http10 ? "1.0" : "1.1")},
      {"keepalive", boolean(!o.close)}, {"body_bytes", integer(static_cast<long long>(o.body.size()))},
      {"headers", array(o.headers, str)},
      {"targets", array(targets, [](const Target& t) { return str(t.url); })},
      {"cpus", array(info.threadCpus, integer)}});
  const std::string window = object({
      {"start_epoch", epoch(info.startEpoch)},
      {"first_send_epoch", info.firstSendEpoch > 0 ? epoch(info.firstSendEpoch) : "null"},
      {"measured_s", num(info.measuredS)}, {"drain_s", num(info.drainS)},
      {"drain_cut", boolean(s.drainCut)}});
  return object({{"tool", str("orchestrate-load")}, {"version", integer(kFormatVersion)},
                 {"generator_version", str(kVersion)}, {"parameters", parameters},
                 {"interrupted", boolean(info.interrupted)}, {"window", window}, {"counts", counts(s)},
                 {"rate", rate(o, s, info)}, {"latency", histogram(s.latency)},
                 {"service_time", histogram(s.service)}, {"send_lag", histogram(s.sendLag)},
                 {"client_send_lag", histogram(s.clientSendLag)}}) +
         "\n";
}

}  // namespace orchload
