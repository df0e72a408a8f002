#include "ResponseCache.h"

namespace orch {

namespace {

struct ErrorInfo {
  int status;
  const char* reason;
};

// Index order matches errors_[]; the last entry is the fallback.
constexpr ErrorInfo kErrors[] = {
    {400, "Bad Request"},      {405, "Method Not Allowed"},
    {408, "Request Timeout"},  {413, "Content Too Large"},
    {414, "URI Too Long"},     {417, "Expectation Failed"},
    {431, "Request Header Fields Too Large"},
    {501, "Not Implemented"},  {505, "HTTP Version Not Supported"},
    {500, "Internal Server Error"},
};

}  // namespace

ResponseCache::ResponseCache(std::string body) : body_(std::move(body)) { refresh(std::time(nullptr)); }

void ResponseCache::refresh(std::time_t now) {
  if (now == second_) return;
  second_ = now;
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(date_, sizeof(date_), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  rebuild();
}

void ResponseCache::rebuild() {
  static constexpr const char* kConnection[kNumKinds] = {"", "Connection: keep-alive\r\n",
                                                         "Connection: close\r\n"};
  for (int head = 0; head < 2; ++head) {
    for (int k = 0; k < kNumKinds; ++k) {
      std::string& r = ok_[head][k];
      r.clear();
      r += "HTTP/1.1 200 OK\r\nServer: orchestrate\r\nDate: ";
      r += date_;
      r += "\r\nContent-Type: text/plain\r\nContent-Length: ";
      r += std::to_string(body_.size());
      r += "\r\n";
      r += kConnection[k];
      r += "\r\n";
      if (head == 0) r += body_;
    }
  }
  static_assert(std::size(kErrors) == kNumErrors);
  for (size_t i = 0; i < std::size(kErrors); ++i) {
    std::string text = std::string(kErrors[i].reason) + "\n";
    std::string head = "HTTP/1.1 " + std::to_string(kErrors[i].status) + " " + kErrors[i].reason +
                       "\r\nServer: orchestrate\r\nDate: " + date_ +
                       "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size()) +
                       (kErrors[i].status == 405 ? "\r\nAllow: GET, HEAD, POST, PUT, OPTIONS" : "") +
                       "\r\nConnection: close\r\n\r\n";
    errors_[1][i] = head;
    errors_[0][i] = head + text;
  }
}

const std::string& ResponseCache::error(int status, bool head) const {
  const auto& table = errors_[head ? 1 : 0];
  for (size_t i = 0; i + 1 < std::size(kErrors); ++i) {
    if (kErrors[i].status == status) return table[i];
  }
  return table[std::size(kErrors) - 1];
}

}  // namespace orch
