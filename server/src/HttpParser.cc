#include "HttpParser.h"

#include <algorithm>
#include <cstring>

namespace orch {

namespace {

constexpr int kMaxBlankLines = 4;  // RFC 9112 2.2: ignore "at least one"

bool isTchar(unsigned char c) {
  static constexpr const char* kExtra = "!#$%&'*+-.^_`|~";
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && std::strchr(kExtra, c) != nullptr);
}

bool equalsNoCase(const char* b, const char* e, const char* lit) {
  size_t n = std::strlen(lit);
  if (static_cast<size_t>(e - b) != n) return false;
  for (size_t i = 0; i < n; ++i) {
    char c = b[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lit[i]) return false;
  }
  return true;
}

bool isOws(char c) { return c == ' ' || c == '\t'; }

}  // namespace

HttpParser::Result HttpParser::parse(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  switch (state_) {
    case State::kError:
      return Result::kError;
    case State::kBody: {
      uint64_t take = std::min<uint64_t>(len, bodyRemaining_);
      bodyRemaining_ -= take;
      *consumed = static_cast<size_t>(take);
      if (bodyRemaining_ > 0) return Result::kNeedMore;
      state_ = State::kIdle;
      return Result::kComplete;
    }
    case State::kIdle:
    case State::kHead:
      break;
  }
  size_t skip = 0;
  if (lines_ == 0 && lineStart_ == 0) {
    while (skip + 1 < len && data[skip] == '\r' && data[skip + 1] == '\n') {
      skip += 2;
      if (++blankLinesSkipped_ > kMaxBlankLines) return fail(400);
    }
  }
  size_t c = 0;
  Result r = parseHead(data + skip, len - skip, &c);
  *consumed = skip + c;
  return r;
}

HttpParser::Result HttpParser::parseHead(const char* data, size_t len, size_t* consumed) {
  if (len > 0) state_ = State::kHead;
  for (;;) {
    const char* start = data + lineStart_;
    const auto* nl = static_cast<const char*>(std::memchr(start, '\n', len - lineStart_));
    if (nl == nullptr) {
      if (len > limits_.maxHeadBytes) return fail(lines_ == 0 ? 414 : 431);
      return Result::kNeedMore;
    }
    size_t lineEnd = static_cast<size_t>(nl - data);  // index of '\n'
    if (lineEnd + 1 > limits_.maxHeadBytes) return fail(lines_ == 0 ? 414 : 431);
    if (lineEnd == lineStart_ || data[lineEnd - 1] != '\r') return fail(400);  // bare LF
    const char* end = nl - 1;  // the '\r'
    lineStart_ = lineEnd + 1;
    if (lines_ == 0) {
      if (!parseRequestLine(start, end)) return Result::kError;
    } else if (start == end) {
      return finishHead(lineStart_, len, consumed);
    } else {
      if (lines_ > limits_.maxHeaders) return fail(431);
      if (!parseHeaderLine(start, end)) return Result::kError;
    }
    ++lines_;
  }
}

bool HttpParser::parseRequestLine(const char* begin, const char* end) {
  const char* p = begin;
  while (p < end && isTchar(static_cast<unsigned char>(*p))) ++p;
  if (p == begin || p >= end || *p != ' ') return reject(400);
  isHead_ = (p - begin == 4 && std::memcmp(begin, "HEAD", 4) == 0);

  const char* target = ++p;
  while (p < end && static_cast<unsigned char>(*p) > 0x20 && static_cast<unsigned char>(*p) < 0x7f) ++p;
  if (p == target || p >= end || *p != ' ') return reject(400);
  // origin-form, asterisk-form or absolute-form; anything else is malformed.
  static constexpr char kScheme[] = "://";
  bool formOk = *target == '/' || (*target == '*' && p - target == 1) ||
                std::search(target, p, kScheme, kScheme + 3) != p;
  if (!formOk) return reject(400);

  const char* v = ++p;
  size_t vlen = static_cast<size_t>(end - v);
  if (vlen == 8 && std::memcmp(v, "HTTP/1.1", 8) == 0) {
    version_ = 11;
  } else if (vlen == 8 && std::memcmp(v, "HTTP/1.0", 8) == 0) {
    version_ = 10;
  } else if (vlen > 5 && vlen <= 16 && std::memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' &&
             std::all_of(v + 5, end, [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    return reject(505);  // well-formed, just not a version we speak
  } else {
    return reject(400);
  }
  return true;
}

bool HttpParser::parseHeaderLine(const char* begin, const char* end) {
  if (isOws(*begin)) return reject(400);  // obs-fold (RFC 9112 5.2)
  const char* p = begin;
  while (p < end && isTchar(static_cast<unsigned char>(*p))) ++p;
  if (p == begin || p >= end || *p != ':') return reject(400);  // includes "Name :"
  const char* nameEnd = p;
  const char* v = p + 1;
  const char* ve = end;
  while (v < ve && isOws(*v)) ++v;
  while (ve > v && isOws(ve[-1])) --ve;
  for (const char* q = v; q < ve; ++q) {
    auto c = static_cast<unsigned char>(*q);
    if (c != '\t' && (c < 0x20 || c == 0x7f)) return reject(400);
  }

  if (equalsNoCase(begin, nameEnd, "host")) {
    ++hostCount_;
  } else if (equalsNoCase(begin, nameEnd, "content-length")) {
    if (v == ve) return reject(400);
    uint64_t value = 0;
    for (const char* q = v; q < ve; ++q) {
      if (*q < '0' || *q > '9') return reject(400);
      // Saturate instead of overflowing; anything this big is a 413 anyway.
      value = value > (UINT64_MAX - 9) / 10 ? UINT64_MAX : value * 10 + static_cast<uint64_t>(*q - '0');
    }
    if (hasContentLength_ && value != contentLength_) return reject(400);
    hasContentLength_ = true;
    contentLength_ = value;
  } else if (equalsNoCase(begin, nameEnd, "transfer-encoding")) {
    hasTransferEncoding_ = true;
  } else if (equalsNoCase(begin, nameEnd, "connection")) {
    const char* t = v;
    while (t < ve) {
      const char* comma = std::find(t, ve, ',');
      const char* tb = t;
      const char* te = comma;
      while (tb < te && isOws(*tb)) ++tb;
      while (te > tb && isOws(te[-1])) --te;
      if (equalsNoCase(tb, te, "close")) connClose_ = true;
      if (equalsNoCase(tb, te, "keep-alive")) connKeepAlive_ = true;
      t = comma == ve ? ve : comma + 1;
    }
  }
  return true;
}

HttpParser::Result HttpParser::finishHead(size_t headLen, size_t len, size_t* consumed) {
  if (hostCount_ > 1 || (version_ == 11 && hostCount_ == 0)) return fail(400);
  if (hasTransferEncoding_) {
    // Smuggling guard first (RFC 9112 6.1), then "not implemented".
    if (hasContentLength_ || version_ == 10) return fail(400);
    return fail(501);
  }
  if (hasContentLength_ && contentLength_ > limits_.maxBodyBytes) return fail(413);
  keepAlive_ = version_ == 11 ? !connClose_ : (connKeepAlive_ && !connClose_);
  bodyRemaining_ = hasContentLength_ ? contentLength_ : 0;
  resetHead();
  uint64_t take = std::min<uint64_t>(len - headLen, bodyRemaining_);
  bodyRemaining_ -= take;
  *consumed = headLen + static_cast<size_t>(take);
  if (bodyRemaining_ > 0) {
    state_ = State::kBody;
    return Result::kNeedMore;
  }
  state_ = State::kIdle;
  return Result::kComplete;
}

void HttpParser::resetHead() {
  lineStart_ = 0;
  lines_ = 0;
  blankLinesSkipped_ = 0;
  connClose_ = false;
  connKeepAlive_ = false;
  hasContentLength_ = false;
  hasTransferEncoding_ = false;
  hostCount_ = 0;
  contentLength_ = 0;
}

bool HttpParser::reject(int status) {
  fail(status);
  return false;
}

HttpParser::Result HttpParser::fail(int status) {
  state_ = State::kError;
  errorStatus_ = status;
  return Result::kError;
}

}  // namespace orch
