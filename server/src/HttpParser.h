#pragma once

#include <cstddef>
#include <cstdint>

namespace orch {

struct HttpLimits {
  size_t maxHeadBytes = 8192;       // request line + headers + blank line
  size_t maxHeaders = 100;          // header lines
  uint64_t maxBodyBytes = 1 << 20;  // Content-Length above this: 413
};

// Incremental, allocation-free HTTP/1.x request parser with strict limits.
// One per connection; not thread-safe.
//
// The caller keeps unconsumed bytes and passes them again, with new bytes
// appended, starting at the same position: parse(data, len) always gets the
// input from the first byte not yet consumed. The head is consumed only once
// it is complete (so the caller buffers at most maxHeadBytes of it); a body
// is consumed, and discarded, as it arrives. Scanning resumes where the last
// call stopped, so feeding a head one byte at a time costs O(n), not O(n^2).
//
// Statuses on kError: 400 malformed (bad request line, bare LF, obs-fold,
// bad header name/value, missing or repeated Host in HTTP/1.1, conflicting
// Content-Length values, Content-Length together with Transfer-Encoding,
// Transfer-Encoding in HTTP/1.0), 413 Content-Length > maxBodyBytes,
// 414 request line longer than maxHeadBytes, 431 head longer than
// maxHeadBytes or more than maxHeaders headers, 501 Transfer-Encoding
// (chunked bodies are not implemented), 505 HTTP version other than 1.0/1.1.
class HttpParser {
 public:
  enum class Result { kNeedMore, kComplete, kError };

  explicit HttpParser(const HttpLimits& limits) : limits_(limits) {}

  // *consumed: bytes of data the caller may drop (also on kNeedMore: leading
  // blank lines, body bytes). After kComplete the next call starts the next
  // request; after kError every call returns kError.
  Result parse(const char* data, size_t len, size_t* consumed);

  // Of the last completed request.
  bool keepAlive() const { return keepAlive_; }
  bool isHead() const { return isHead_; }
  int version() const { return version_; }  // 10 or 11

  int errorStatus() const { return errorStatus_; }
  // True once any byte of the current request has been seen (and until it
  // completes): what the header timeout measures.
  bool inRequest() const { return state_ != State::kIdle || lineStart_ > 0; }

 private:
  enum class State { kIdle, kHead, kBody, kError };

  Result parseHead(const char* data, size_t len, size_t* consumed);
  bool parseRequestLine(const char* begin, const char* end);
  bool parseHeaderLine(const char* begin, const char* end);
  Result finishHead(size_t headLen, size_t len, size_t* consumed);
  Result fail(int status);
  bool reject(int status);  // fail() for the bool-returning line parsers
  void resetHead();

  const HttpLimits limits_;
  State state_ = State::kIdle;
  int errorStatus_ = 0;

  // Head scanning state, offsets relative to the first unconsumed byte.
  size_t lineStart_ = 0;  // start of the first line not yet parsed
  size_t lines_ = 0;      // lines parsed so far (0: request line pending)
  int blankLinesSkipped_ = 0;

  // Facts gathered from the head.
  int version_ = 11;
  bool isHead_ = false;
  bool connClose_ = false;
  bool connKeepAlive_ = false;
  bool hasContentLength_ = false;
  bool hasTransferEncoding_ = false;
  int hostCount_ = 0;
  uint64_t contentLength_ = 0;

  bool keepAlive_ = true;
  uint64_t bodyRemaining_ = 0;
};

}  // namespace orch
