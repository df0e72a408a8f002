#include "Report.h"

#include <algorithm>
#include <cstdio>

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

void appendNumber(std::string* out, double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  *out += buf;
}

void appendInt(std::string* out, long long v) { *out += std::to_string(v); }

}  // namespace

std::string renderReport(const Options& o, const std::vector<Target>& targets, const Stats& s,
                         const RunInfo& info) {
  std::string out;
  out.reserve(64 * 1024);
  out += "{\"tool\":\"orchestrate-load\",\"version\":";
  appendInt(&out, kFormatVersion);
  out += ",\"generator_version\":";
  appendString(&out, kVersion);
  out += ",\"parameters\":{\"mode\":";
  appendString(&out, o.openLoop() ? "open" : "closed");
  out += ",\"rate\":";
  if (o.openLoop()) appendNumber(&out, o.rate);
  else out += "null";
  out += ",\"threads\":";
  appendInt(&out, o.threads);
  out += ",\"connections\":";
  appendInt(&out, o.connections);
  out += ",\"pipeline\":";
  appendInt(&out, o.pipeline);
  out += ",\"duration_s\":";
  appendNumber(&out, o.durationS);
  out += ",\"warmup_s\":";
  appendNumber(&out, o.warmupS);
  out += ",\"timeout_s\":";
  appendNumber(&out, o.timeoutS);
  out += ",\"method\":";
  appendString(&out, o.method);
  out += ",\"http\":";
  appendString(&out, o.http10 ? "1.0" : "1.1");
  out += ",\"keepalive\":";
  out += o.close ? "false" : "true";
  out += ",\"body_bytes\":";
  appendInt(&out, static_cast<long long>(o.body.size()));
  out += ",\"headers\":[";
  for (size_t i = 0; i < o.headers.size(); ++i) {
    if (i) out += ',';
    appendString(&out, o.headers[i]);
  }
  out += "],\"targets\":[";
  for (size_t i = 0; i < targets.size(); ++i) {
    if (i) out += ',';
    appendString(&out, targets[i].url);
  }
  out += "],\"cpus\":[";
  for (size_t i = 0; i < info.threadCpus.size(); ++i) {
    if (i) out += ',';
    appendInt(&out, info.threadCpus[i]);
  }
  out += "]},\"interrupted\":";
  out += info.interrupted ? "true" : "false";
  out += ",\"window\":{\"start_epoch\":";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", info.startEpoch);
  out += buf;
  out += ",\"first_send_epoch\":";
  if (info.firstSendEpoch > 0) {
    std::snprintf(buf, sizeof buf, "%.6f", info.firstSendEpoch);
    out += buf;
  } else {
    out += "null";
  }
  out += ",\"measured_s\":";
  appendNumber(&out, info.measuredS);
  out += "},\"counts\":{";
  const std::pair<const char*, long long> counts[] = {
      {"requests", s.requests}, {"sent", s.sent}, {"responses", s.responses},
      {"unanswered", s.unanswered}, {"unsent", s.unsent}, {"failed", s.failed},
      {"queued", s.queued}, {"max_queue", s.maxQueue}, {"connects", s.connects},
      {"non_2xx", s.responses - s.status[2]}};
  for (const auto& [name, value] : counts) {
    out += '"';
    out += name;
    out += "\":";
    appendInt(&out, value);
    out += ',';
  }
  out += "\"status\":{";
  const char* const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 0; i < 6; ++i) {
    if (i) out += ',';
    out += '"';
    out += classes[i];
    out += "\":";
    appendInt(&out, s.status[i]);
  }
  out += "},\"errors\":{";
  for (int i = 0; i < static_cast<int>(ErrorKind::kCount); ++i) {
    if (i) out += ',';
    out += '"';
    out += errorName(static_cast<ErrorKind>(i));
    out += "\":";
    appendInt(&out, s.errors[i]);
  }
  out += "}},\"rate\":{\"target\":";
  const double completed = [&] {
    long long n = 0;
    for (long long v : s.perSecond) n += v;
    return static_cast<double>(n);
  }();
  const double achieved = info.measuredS > 0 ? completed / info.measuredS : 0.0;
  if (o.openLoop()) {
    // Self-check: the client kept up if it delivered >= 99% of the target and its p99
    // send lag stayed within max(1 ms, 10% of the interval between requests).
    const double lagLimitUs = std::max(1000.0, 0.1 * 1e6 / o.rate);
    const bool sustained = info.measuredS > 0 && achieved >= 0.99 * o.rate &&
                           static_cast<double>(s.sendLag.valueAtPercentile(99)) <= lagLimitUs;
    appendNumber(&out, o.rate);
    out += ",\"achieved\":";
    appendNumber(&out, achieved);
    out += ",\"sustained\":";
    out += sustained ? "true" : "false";
    out += ",\"send_lag_limit_us\":";
    appendNumber(&out, lagLimitUs);
  } else {
    out += "null,\"achieved\":";
    appendNumber(&out, achieved);
    out += ",\"sustained\":null,\"send_lag_limit_us\":null";
  }
  out += ",\"per_second\":[";
  size_t fullSeconds = std::min(s.perSecond.size(), static_cast<size_t>(info.measuredS + 1e-9));
  for (size_t i = 0; i < fullSeconds; ++i) {
    if (i) out += ',';
    appendInt(&out, s.perSecond[i]);
  }
  out += "]},\"latency\":";
  s.latency.appendJson(&out);
  out += ",\"service_time\":";
  s.service.appendJson(&out);
  out += ",\"send_lag\":";
  s.sendLag.appendJson(&out);
  out += "}\n";
  return out;
}

}  // namespace orchload
