#include "HttpParser.h"

#include <algorithm>
#include <cstring>
#include <iterator>

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

bool equals(const char* b, const char* e, const char* lit) {
  size_t n = std::strlen(lit);
  return static_cast<size_t>(e - b) == n && std::memcmp(b, lit, n) == 0;
}

bool isOws(char c) { return c == ' ' || c == '\t'; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// field-name ":" OWS field-value OWS, with the value's bounds trimmed.
// Rejects obs-fold, "Name :", empty names and control characters.
bool splitField(const char* begin, const char* end, const char** nameEnd, const char** v, const char** ve) {
  if (isOws(*begin)) return false;  // obs-fold (RFC 9112 5.2)
  const char* p = begin;
  while (p < end && isTchar(static_cast<unsigned char>(*p))) ++p;
  if (p == begin || p >= end || *p != ':') return false;  // includes "Name :"
  *nameEnd = p;
  const char* b = p + 1;
  const char* e = end;
  while (b < e && isOws(*b)) ++b;
  while (e > b && isOws(e[-1])) --e;
  for (const char* q = b; q < e; ++q) {
    auto c = static_cast<unsigned char>(*q);
    if (c != '\t' && (c < 0x20 || c == 0x7f)) return false;
  }
  *v = b;
  *ve = e;
  return true;
}

// Calls f(tokenBegin, tokenEnd) for every non-empty element of a
// comma-separated list, OWS trimmed (RFC 9110 5.6.1).
template <typename F>
void forEachListElement(const char* v, const char* ve, F f) {
  while (v < ve) {
    const char* comma = std::find(v, ve, ',');
    const char* tb = v;
    const char* te = comma;
    while (tb < te && isOws(*tb)) ++tb;
    while (te > tb && isOws(te[-1])) --te;
    if (tb < te) f(tb, te);
    v = comma == ve ? ve : comma + 1;
  }
}

// absolute-form with an http(s) scheme and a non-empty authority; the rest
// of the target was already checked to be visible ASCII.
bool isAbsoluteForm(const char* t, const char* e) {
  const char* colon = std::find(t, e, ':');
  if (!equalsNoCase(t, colon, "http") && !equalsNoCase(t, colon, "https")) return false;
  if (e - colon < 3 || colon[1] != '/' || colon[2] != '/') return false;
  const char* authority = colon + 3;
  const char* authorityEnd = std::find_if(authority, e, [](char c) { return c == '/' || c == '?' || c == '#'; });
  return authorityEnd != authority && std::find(authority, authorityEnd, '@') == authorityEnd;  // no userinfo
}

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
      return complete();
    }
    case State::kChunkSize:
    case State::kChunkData:
    case State::kChunkCrlf:
    case State::kTrailer:
      return parseChunked(data, len, consumed);
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
    const size_t lineLimit = lines_ == 0 ? limits_.maxRequestLineBytes : limits_.maxHeadBytes;
    if (nl == nullptr) {
      if (lines_ == 0 && len > lineLimit) return fail(414);
      if (len > limits_.maxHeadBytes) return fail(431);
      return Result::kNeedMore;
    }
    size_t lineEnd = static_cast<size_t>(nl - data);  // index of '\n'
    if (lines_ == 0 && lineEnd + 1 > lineLimit) return fail(414);
    if (lineEnd + 1 > limits_.maxHeadBytes) return fail(431);
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
  currentIsHead_ = false;
  const char* p = begin;
  while (p < end && isTchar(static_cast<unsigned char>(*p))) ++p;
  if (p == begin || p >= end || *p != ' ') return reject(400);
  const char* method = begin;
  const char* methodEnd = p;
  currentIsHead_ = equals(method, methodEnd, "HEAD");
  isOptions_ = equals(method, methodEnd, "OPTIONS");

  const char* target = ++p;
  while (p < end && static_cast<unsigned char>(*p) > 0x20 && static_cast<unsigned char>(*p) < 0x7f) ++p;
  if (p == target || p >= end || *p != ' ') return reject(400);
  const char* targetEnd = p;

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

  // The method before the target's form: CONNECT's authority-form is a
  // valid request for a method we do not allow, not a malformed one.
  static constexpr const char* kServed[] = {"GET", "HEAD", "POST", "PUT", "OPTIONS"};
  static constexpr const char* kKnown[] = {"DELETE", "PATCH", "CONNECT", "TRACE"};
  auto is = [&](const char* m) { return equals(method, methodEnd, m); };
  if (std::none_of(std::begin(kServed), std::end(kServed), is)) {
    return reject(std::any_of(std::begin(kKnown), std::end(kKnown), is) ? 405 : 501);
  }
  // origin-form, asterisk-form (OPTIONS only) or absolute-form (RFC 9112 3.2).
  bool formOk = *target == '/' || (*target == '*' && targetEnd - target == 1 && isOptions_) ||
                isAbsoluteForm(target, targetEnd);
  if (!formOk) return reject(400);
  return true;
}

bool HttpParser::parseHeaderLine(const char* begin, const char* end) {
  const char* nameEnd = nullptr;
  const char* v = nullptr;
  const char* ve = nullptr;
  if (!splitField(begin, end, &nameEnd, &v, &ve)) return reject(400);

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
    // Several lines form one list; what matters is the final coding.
    hasTransferEncoding_ = true;
    forEachListElement(v, ve, [this](const char* tb, const char* te) {
      // "gzip, chunked" is a coding we lack; "chunked, gzip" leaves the
      // length undeterminable (both decided in finishHead).
      teChunkedLast_ = equalsNoCase(tb, te, "chunked");
      if (teChunkedLast_) {
        ++teChunkedCount_;
      } else {
        teOther_ = true;
      }
    });
  } else if (equalsNoCase(begin, nameEnd, "expect")) {
    if (equalsNoCase(v, ve, "100-continue")) {
      expectContinue_ = true;
    } else {
      expectOther_ = true;
    }
  } else if (equalsNoCase(begin, nameEnd, "connection")) {
    forEachListElement(v, ve, [this](const char* tb, const char* te) {
      if (equalsNoCase(tb, te, "close")) connClose_ = true;
      if (equalsNoCase(tb, te, "keep-alive")) connKeepAlive_ = true;
    });
  }
  return true;
}

HttpParser::Result HttpParser::finishHead(size_t headLen, size_t len, size_t* consumed) {
  if (hostCount_ > 1 || (version_ == 11 && hostCount_ == 0)) return fail(400);
  bool chunked = false;
  if (hasTransferEncoding_) {
    // Smuggling guards first (RFC 9112 6.1, 6.3): with Content-Length, in
    // HTTP/1.0, chunked not last or applied twice, the framing is unknowable.
    if (hasContentLength_ || version_ == 10 || !teChunkedLast_ || teChunkedCount_ > 1) return fail(400);
    chunked = true;
  }
  // RFC 9110 10.1.1: an HTTP/1.0 client's Expect is ignored.
  if (version_ == 11 && expectOther_) return fail(417);
  if (teOther_) return fail(501);  // a transfer coding we do not implement
  if (hasContentLength_ && contentLength_ > limits_.maxBodyBytes) return fail(413);
  keepAlive_ = version_ == 11 ? !connClose_ : (connKeepAlive_ && !connClose_);
  isHead_ = currentIsHead_;
  // Always sent when asked and a body will be read (RFC 9110 10.1.1 only
  // allows omitting it), so the outcome does not depend on how the input
  // was split.
  continuePending_ = version_ == 11 && expectContinue_ && (chunked || contentLength_ > 0);
  bodyRemaining_ = hasContentLength_ ? contentLength_ : 0;
  resetHead();
  if (chunked) {
    state_ = State::kChunkSize;
    bodyTotal_ = 0;
    trailerBytes_ = 0;
    lineScanned_ = 0;
    // The caller calls again with the bytes after the head.
    *consumed = headLen;
    return Result::kNeedMore;
  }
  uint64_t take = std::min<uint64_t>(len - headLen, bodyRemaining_);
  bodyRemaining_ -= take;
  *consumed = headLen + static_cast<size_t>(take);
  if (bodyRemaining_ > 0) {
    state_ = State::kBody;
    return Result::kNeedMore;
  }
  return complete();
}

HttpParser::Result HttpParser::parseChunked(const char* data, size_t len, size_t* consumed) {
  size_t off = 0;
  for (;;) {
    switch (state_) {
      case State::kChunkData: {
        uint64_t take = std::min<uint64_t>(len - off, bodyRemaining_);
        bodyRemaining_ -= take;
        off += static_cast<size_t>(take);
        if (bodyRemaining_ > 0) {
          *consumed = off;
          return Result::kNeedMore;
        }
        state_ = State::kChunkCrlf;
        break;
      }
      case State::kChunkCrlf:
        // Checked byte by byte so that the verdict does not depend on how
        // the input was split.
        if (off < len && data[off] != '\r') return fail(400);
        if (off + 1 < len && data[off + 1] != '\n') return fail(400);
        if (len - off < 2) {
          *consumed = off;
          return Result::kNeedMore;
        }
        off += 2;
        state_ = State::kChunkSize;
        break;
      case State::kChunkSize:
      case State::kTrailer: {
        const bool trailer = state_ == State::kTrailer;
        const size_t limit = trailer ? limits_.maxTrailerBytes - trailerBytes_ : limits_.maxChunkLineBytes;
        const int tooLong = trailer ? 431 : 400;
        const char* start = data + off;
        const auto* nl = static_cast<const char*>(std::memchr(start + lineScanned_, '\n', len - off - lineScanned_));
        if (nl == nullptr) {
          if (len - off > limit) return fail(tooLong);
          lineScanned_ = len - off;
          *consumed = off;
          return Result::kNeedMore;
        }
        lineScanned_ = 0;
        size_t lineLen = static_cast<size_t>(nl - start) + 1;
        if (lineLen > limit) return fail(tooLong);
        if (lineLen < 2 || nl[-1] != '\r') return fail(400);  // bare LF
        const char* end = nl - 1;
        off += lineLen;
        if (!trailer) {
          if (!parseChunkSizeLine(start, end)) return Result::kError;
          break;
        }
        if (start == end) {
          *consumed = off;
          return complete();
        }
        trailerBytes_ += lineLen;
        // Trailer fields are checked like header fields, then ignored.
        const char* nameEnd = nullptr;
        const char* v = nullptr;
        const char* ve = nullptr;
        if (!splitField(start, end, &nameEnd, &v, &ve)) return fail(400);
        break;
      }
      default:
        return fail(500);  // unreachable: only chunked states get here
    }
  }
}

bool HttpParser::parseChunkSizeLine(const char* begin, const char* end) {
  const char* p = begin;
  uint64_t size = 0;
  while (p < end && hexValue(*p) >= 0) {
    // Saturate: anything above maxBodyBytes is a 413 whatever its digits.
    size = size > (UINT64_MAX >> 4) ? UINT64_MAX : (size << 4) | static_cast<uint64_t>(hexValue(*p));
    ++p;
  }
  if (p == begin) return reject(400);
  // chunk-ext: BWS ";" ... (RFC 9112 7.1.1); accepted and ignored, but only
  // visible characters, spaces and tabs.
  const char* q = p;
  while (q < end && isOws(*q)) ++q;
  if (q < end && *q != ';') return reject(400);
  for (; q < end; ++q) {
    auto c = static_cast<unsigned char>(*q);
    if (c != '\t' && (c < 0x20 || c == 0x7f)) return reject(400);
  }
  if (size > limits_.maxBodyBytes - bodyTotal_) return reject(413);
  bodyTotal_ += size;
  if (size == 0) {
    state_ = State::kTrailer;
  } else {
    bodyRemaining_ = size;
    state_ = State::kChunkData;
  }
  return true;
}

HttpParser::Result HttpParser::complete() {
  state_ = State::kIdle;
  currentIsHead_ = false;
  return Result::kComplete;
}

void HttpParser::resetHead() {
  lineStart_ = 0;
  lines_ = 0;
  blankLinesSkipped_ = 0;
  isOptions_ = false;
  connClose_ = false;
  connKeepAlive_ = false;
  hasContentLength_ = false;
  hasTransferEncoding_ = false;
  teChunkedLast_ = false;
  teChunkedCount_ = 0;
  teOther_ = false;
  expectContinue_ = false;
  expectOther_ = false;
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
