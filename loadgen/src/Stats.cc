#include "Stats.h"

#include <algorithm>

namespace orchload {

const char* errorName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnect: return "connect";
    case ErrorKind::kReset: return "reset";
    case ErrorKind::kRead: return "read";
    case ErrorKind::kWrite: return "write";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kClosed: return "closed";
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kCount: break;
  }
  return "?";
}

void Stats::add(const Stats& o) {
  latency.add(o.latency);
  service.add(o.service);
  sendLag.add(o.sendLag);
  clientSendLag.add(o.clientSendLag);
  requests += o.requests;
  sent += o.sent;
  responses += o.responses;
  unanswered += o.unanswered;
  unsent += o.unsent;
  failed += o.failed;
  queued += o.queued;
  maxQueue += o.maxQueue;  // per-thread maxima need not coincide: the sum bounds the total
  for (int i = 0; i < 6; ++i) status[i] += o.status[i];
  for (int i = 0; i < static_cast<int>(ErrorKind::kCount); ++i) {
    errors[i] += o.errors[i];
    failedBy[i] += o.failedBy[i];
  }
  drainEndNs = std::max(drainEndNs, o.drainEndNs);
  drainCut = drainCut || o.drainCut;
  connects += o.connects;
  if (o.firstSendNs && (!firstSendNs || o.firstSendNs < firstSendNs)) firstSendNs = o.firstSendNs;
  if (perSecond.size() < o.perSecond.size()) perSecond.resize(o.perSecond.size(), 0);
  for (size_t i = 0; i < o.perSecond.size(); ++i) perSecond[i] += o.perSecond[i];
}

}  // namespace orchload
