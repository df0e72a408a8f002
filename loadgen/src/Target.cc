#include "Target.h"

#include <netdb.h>

#include <cstdio>
#include <cstring>

namespace orchload {

namespace {

bool splitUrl(const std::string& url, std::string* host, std::string* port, std::string* path) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) return false;
  std::string rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  *path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.empty()) return false;
  if (authority[0] == '[') {  // [::1]:8000
    size_t close = authority.find(']');
    if (close == std::string::npos) return false;
    *host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return false;
    *port = after.empty() ? "80" : after.substr(1);
  } else {
    size_t colon = authority.rfind(':');
    *host = authority.substr(0, colon);
    *port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  }
  return !host->empty() && !port->empty();
}

}  // namespace

bool buildTargets(const Options& o, std::vector<Target>* out) {
  for (const std::string& url : o.urls) {
    std::string host, port, path;
    if (!splitUrl(url, &host, &port, &path)) {
      std::fprintf(stderr, "orchestrate-load: not an http:// URL: %s\n", url.c_str());
      return false;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res) {
      std::fprintf(stderr, "orchestrate-load: cannot resolve %s: %s\n", url.c_str(), gai_strerror(rc));
      return false;
    }
    Target t;
    t.url = url;
    std::memcpy(&t.addr, res->ai_addr, res->ai_addrlen);
    t.addrLen = res->ai_addrlen;
    freeaddrinfo(res);
    t.head = o.method == "HEAD";
    std::string hostHeader = url.substr(7, url.find('/', 7) == std::string::npos
                                               ? std::string::npos : url.find('/', 7) - 7);
    std::string& r = t.request;
    r = o.method + " " + path + (o.http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    r += "Host: " + hostHeader + "\r\n";
    if (o.close) r += "Connection: close\r\n";
    else if (o.http10) r += "Connection: keep-alive\r\n";
    for (const std::string& h : o.headers) r += h + "\r\n";
    if (!o.body.empty() || o.method == "POST" || o.method == "PUT")
      r += "Content-Length: " + std::to_string(o.body.size()) + "\r\n";
    r += "\r\n";
    r += o.body;
    out->push_back(std::move(t));
  }
  return true;
}

}  // namespace orchload
