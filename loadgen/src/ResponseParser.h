#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace orchload {

// Incremental HTTP/1.x response parser. Bytes may arrive split anywhere and several
// pipelined responses may share one read: feed() consumes at most one response and
// says how many bytes it took, keeping partial lines in a bounded buffer (so the
// connection needs no input buffer of its own). Bodies: Content-Length, chunked (with
// trailers) or, without either, until the peer closes (finishOnEof). 1xx interim
// responses are skipped. HEAD answers and 204/304 carry no body.
// Limits: a line of at most 16 KiB, at most 100 header lines, Content-Length and chunk
// sizes below 2^40. Anything else is a protocol error and the connection is dropped.
// Not thread-safe; one per connection.
class ResponseParser {
 public:
  enum class Result { kNeedMore, kDone, kError };

  void reset(bool headRequest);
  Result feed(const char* data, size_t len, size_t* consumed);
  // The peer closed: completes a read-until-close body, anything else mid-response is an error.
  Result finishOnEof();
  bool idle() const { return state_ == State::kStatusLine && line_.empty(); }

  int status() const { return status_; }
  bool keepAlive() const { return keepAlive_; }
  const char* error() const { return error_; }

 private:
  enum class State { kStatusLine, kHeaders, kBody, kChunkSize, kChunkData, kChunkDataEnd,
                     kTrailers, kUntilClose, kDone, kError };

  Result fail(const char* why);
  bool onStatusLine(const char* p, size_t n);
  bool onHeaderLine(const char* p, size_t n);
  bool onHeadersEnd();
  bool onChunkSize(const char* p, size_t n);

  State state_ = State::kStatusLine;
  bool head_ = false;
  bool http10_ = false;
  bool keepAlive_ = true;
  bool chunked_ = false;
  bool hasLength_ = false;
  bool connClose_ = false;
  bool connKeepAlive_ = false;
  int status_ = 0;
  int headerLines_ = 0;
  uint64_t remaining_ = 0;
  const char* error_ = "";
  std::string line_;
};

}  // namespace orchload
