#pragma once

#include <cstddef>
#include <cstdint>

namespace orch {

struct HttpLimits {
  // Request line + headers + blank line. 16 KiB: a cookie-heavy browser
  // request (a few KB of Cookie plus UA, client hints, Accept-*) fits, and
  // it matches Node.js's default (--max-http-header-size); nginx refuses at
  // 8 KiB per line, which maxRequestLineBytes mirrors for the request line.
  size_t maxHeadBytes = 16 * 1024;
  size_t maxRequestLineBytes = 8 * 1024;  // longer: 414
  size_t maxHeaders = 100;                // header lines
  uint64_t maxBodyBytes = 1 << 20;        // Content-Length or chunked total above this: 413
  size_t maxChunkLineBytes = 1024;        // chunk-size [; extensions] CRLF
  size_t maxTrailerBytes = 4096;          // whole trailer section; above: 431
};

// Incremental, allocation-free HTTP/1.x request parser with strict limits.
// One per connection; not thread-safe.
//
// The caller keeps unconsumed bytes and passes them again, with new bytes
// appended, starting at the same position: parse(data, len) always gets the
// input from the first byte not yet consumed. The head is consumed only once
// it is complete (so the caller buffers at most maxHeadBytes of it); a body
// is consumed, and discarded, as it arrives (chunked: a chunk-size line or a
// trailer line is consumed once complete, so at most one such line is kept).
// Scanning resumes where the last call stopped, so feeding a head one byte at
// a time costs O(n), not O(n^2).
//
// Methods (RFC 9110 9.1, 15.5.6, 15.6.2): GET, HEAD, POST, PUT and OPTIONS
// are served (bodies read and discarded); DELETE, PATCH, CONNECT and TRACE are
// methods this server knows but does not allow on any resource: 405 with
// Allow; any other token (method names are case-sensitive, so "get" too) is a
// method it does not recognise: 501.
//
// Statuses on kError: 400 malformed (request line, target form, bare LF,
// obs-fold, bad header name/value, missing or repeated Host in HTTP/1.1,
// conflicting Content-Length, Content-Length with Transfer-Encoding,
// Transfer-Encoding in HTTP/1.0 or without chunked last, chunked twice, bad
// chunk framing), 405/501 methods as above, 413 body above maxBodyBytes,
// 414 request line longer than maxRequestLineBytes, 417 an Expect other than
// 100-continue, 431 head longer than maxHeadBytes, more than maxHeaders
// headers, or trailers above maxTrailerBytes, 501 a transfer coding other
// than chunked, 505 HTTP version other than 1.0/1.1.
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
  // Whether an error response (or a 408) answers a HEAD request: no body.
  bool errorForHead() const { return currentIsHead_; }
  // True once per request whose head asked "Expect: 100-continue" and will
  // be read (a body follows and no final status was decided): the caller
  // sends "100 Continue" before anything else for that request.
  bool takeContinue() {
    bool c = continuePending_;
    continuePending_ = false;
    return c;
  }
  // True once any byte of the current request has been seen (and until it
  // completes): what the header timeout measures.
  bool inRequest() const { return state_ != State::kIdle || lineStart_ > 0; }

 private:
  enum class State { kIdle, kHead, kBody, kChunkSize, kChunkData, kChunkCrlf, kTrailer, kError };

  Result parseHead(const char* data, size_t len, size_t* consumed);
  Result parseChunked(const char* data, size_t len, size_t* consumed);
  bool parseRequestLine(const char* begin, const char* end);
  bool parseHeaderLine(const char* begin, const char* end);
  bool parseChunkSizeLine(const char* begin, const char* end);
  Result finishHead(size_t headLen, size_t len, size_t* consumed);
  Result complete();
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
  bool currentIsHead_ = false;  // the request being parsed is a HEAD
  bool isOptions_ = false;
  bool connClose_ = false;
  bool connKeepAlive_ = false;
  bool hasContentLength_ = false;
  bool hasTransferEncoding_ = false;
  bool teChunkedLast_ = false;  // the last transfer coding seen is chunked
  int teChunkedCount_ = 0;
  bool teOther_ = false;        // a coding other than chunked
  bool expectContinue_ = false;
  bool expectOther_ = false;
  int hostCount_ = 0;
  uint64_t contentLength_ = 0;

  bool keepAlive_ = true;
  bool isHead_ = false;
  bool continuePending_ = false;
  uint64_t bodyRemaining_ = 0;  // of the Content-Length body or the current chunk
  uint64_t bodyTotal_ = 0;      // chunked: data bytes so far
  size_t trailerBytes_ = 0;
  size_t lineScanned_ = 0;      // chunked: bytes of the pending line already searched for LF
};

}  // namespace orch
