#include "ResponseParser.h"

#include <cstring>
#include <strings.h>

namespace orchload {

namespace {
constexpr size_t kMaxLine = 16 * 1024;
constexpr int kMaxHeaderLines = 100;
constexpr uint64_t kMaxSize = uint64_t{1} << 40;

bool iequals(const char* p, size_t n, const char* lit) {
  size_t m = std::strlen(lit);
  return n == m && strncasecmp(p, lit, m) == 0;
}

// Trim optional whitespace around a header value.
void trim(const char** p, size_t* n) {
  while (*n && (**p == ' ' || **p == '\t')) { ++*p; --*n; }
  while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) --*n;
}

// Does a comma-separated header value contain token (case-insensitive)?
bool hasToken(const char* p, size_t n, const char* token) {
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && p[j] != ',') ++j;
    const char* s = p + i;
    size_t len = j - i;
    trim(&s, &len);
    if (iequals(s, len, token)) return true;
    i = j + 1;
  }
  return false;
}
}  // namespace

void ResponseParser::reset(bool headRequest) {
  state_ = State::kStatusLine;
  head_ = headRequest;
  http10_ = false;
  keepAlive_ = true;
  chunked_ = hasLength_ = connClose_ = connKeepAlive_ = false;
  status_ = 0;
  headerLines_ = 0;
  remaining_ = 0;
  error_ = "";
  line_.clear();
}

ResponseParser::Result ResponseParser::fail(const char* why) {
  state_ = State::kError;
  error_ = why;
  return Result::kError;
}

bool ResponseParser::onStatusLine(const char* p, size_t n) {
  // "HTTP/1.x SSS[ reason]"
  if (n < 12 || std::memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
    return false;
  if (n > 12 && p[12] != ' ') return false;
  int s = 0;
  for (int i = 9; i < 12; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
    s = s * 10 + (p[i] - '0');
  }
  if (s < 100) return false;
  status_ = s;
  http10_ = p[7] == '0';
  return true;
}

bool ResponseParser::onHeaderLine(const char* p, size_t n) {
  if (++headerLines_ > kMaxHeaderLines) return false;
  const char* colon = static_cast<const char*>(std::memchr(p, ':', n));
  if (!colon || colon == p) return false;
  size_t nameLen = static_cast<size_t>(colon - p);
  const char* v = colon + 1;
  size_t vn = n - nameLen - 1;
  trim(&v, &vn);
  if (iequals(p, nameLen, "content-length")) {
    if (vn == 0 || vn > 13) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < vn; ++i) {
      if (v[i] < '0' || v[i] > '9') return false;
      x = x * 10 + static_cast<uint64_t>(v[i] - '0');
    }
    if (x >= kMaxSize || (hasLength_ && x != remaining_)) return false;
    hasLength_ = true;
    remaining_ = x;
  } else if (iequals(p, nameLen, "transfer-encoding")) {
    if (hasToken(v, vn, "chunked")) chunked_ = true;
  } else if (iequals(p, nameLen, "connection")) {
    if (hasToken(v, vn, "close")) connClose_ = true;
    if (hasToken(v, vn, "keep-alive")) connKeepAlive_ = true;
  }
  return true;
}

bool ResponseParser::onHeadersEnd() {
  keepAlive_ = http10_ ? (connKeepAlive_ && !connClose_) : !connClose_;
  if (status_ < 200 && status_ != 101) {  // interim: the real answer follows
    bool head = head_;
    reset(head);
    return true;
  }
  if (head_ || status_ == 204 || status_ == 304) {
    state_ = State::kDone;
  } else if (chunked_) {
    state_ = State::kChunkSize;
  } else if (hasLength_) {
    state_ = remaining_ ? State::kBody : State::kDone;
  } else {
    state_ = State::kUntilClose;
    keepAlive_ = false;
  }
  return true;
}

bool ResponseParser::onChunkSize(const char* p, size_t n) {
  uint64_t x = 0;
  size_t i = 0;
  for (; i < n; ++i) {
    char c = p[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else break;
    x = x * 16 + static_cast<uint64_t>(d);
    if (x >= kMaxSize) return false;
  }
  if (i == 0) return false;
  if (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t') return false;
  remaining_ = x;
  state_ = x ? State::kChunkData : State::kTrailers;
  return true;
}

ResponseParser::Result ResponseParser::feed(const char* data, size_t len, size_t* consumed) {
  size_t pos = 0;
  Result r = Result::kNeedMore;
  while (pos < len && r == Result::kNeedMore) {
    switch (state_) {
      case State::kStatusLine:
      case State::kHeaders:
      case State::kChunkSize:
      case State::kChunkDataEnd:
      case State::kTrailers: {
        const char* nl = static_cast<const char*>(std::memchr(data + pos, '\n', len - pos));
        size_t take = nl ? static_cast<size_t>(nl - (data + pos)) + 1 : len - pos;
        if (line_.size() + take > kMaxLine) {
          *consumed = pos;
          return fail("line too long");
        }
        const char* lp;
        size_t ln;
        if (line_.empty() && nl) {  // the common case: the whole line is in this read
          lp = data + pos;
          ln = take;
        } else {
          line_.append(data + pos, take);
          lp = line_.data();
          ln = line_.size();
        }
        pos += take;
        if (!nl) break;
        --ln;  // '\n'
        if (ln && lp[ln - 1] == '\r') --ln;
        bool ok = true;
        if (state_ == State::kStatusLine) {
          if (ln == 0 && status_ == 0 && headerLines_ == 0) {
            ok = true;  // tolerate a stray blank line between responses
          } else {
            ok = onStatusLine(lp, ln);
            if (ok) state_ = State::kHeaders;
          }
        } else if (state_ == State::kHeaders) {
          ok = ln ? onHeaderLine(lp, ln) : onHeadersEnd();
        } else if (state_ == State::kChunkSize) {
          ok = onChunkSize(lp, ln);
        } else if (state_ == State::kChunkDataEnd) {
          ok = ln == 0;
          state_ = State::kChunkSize;
        } else {  // trailers end with an empty line
          if (ln == 0) state_ = State::kDone;
          else ok = ++headerLines_ <= kMaxHeaderLines;
        }
        line_.clear();
        if (!ok) {
          *consumed = pos;
          return fail("malformed response");
        }
        if (state_ == State::kDone) r = Result::kDone;
        break;
      }
      case State::kBody:
      case State::kChunkData: {
        uint64_t avail = len - pos;
        uint64_t take = avail < remaining_ ? avail : remaining_;
        pos += static_cast<size_t>(take);
        remaining_ -= take;
        if (remaining_ == 0) {
          if (state_ == State::kBody) {
            state_ = State::kDone;
            r = Result::kDone;
          } else {
            state_ = State::kChunkDataEnd;
          }
        }
        break;
      }
      case State::kUntilClose:
        pos = len;
        break;
      case State::kDone:
        r = Result::kDone;
        break;
      case State::kError:
        *consumed = pos;
        return Result::kError;
    }
  }
  if (r == Result::kNeedMore && state_ == State::kDone) r = Result::kDone;
  *consumed = pos;
  return r;
}

ResponseParser::Result ResponseParser::finishOnEof() {
  if (state_ == State::kUntilClose) {
    state_ = State::kDone;
    return Result::kDone;
  }
  if (state_ == State::kDone) return Result::kDone;
  return fail("connection closed mid-response");
}

}  // namespace orchload
