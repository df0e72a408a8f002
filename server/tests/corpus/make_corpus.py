#!/usr/bin/env python3
"""Writes the malformed-request corpus replayed by test_hostile.py and bench/server_hostile.py.

Each case is one file `NAME.txt` holding the raw bytes a client sends on one
connection, and one entry in `expected.json`: the statuses the server must
answer with, in order, when the client sends the file and then half-closes
(shutdown(SHUT_WR)); `[]` means "closed without a response" (an unfinished
request at EOF). The statuses follow server/README.md ("HTTP behaviour").

    python3 server/tests/corpus/make_corpus.py   # rewrites the files in place
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
OK = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: t\r\n"


def tls_client_hello() -> bytes:
    """A TLS 1.2/1.3 ClientHello record (SNI example.com), as a browser would open with."""
    rng = random.Random(443)
    sni = b"example.com"
    sni_ext = (b"\x00\x00" + (len(sni) + 5).to_bytes(2, "big") + (len(sni) + 3).to_bytes(2, "big")
               + b"\x00" + len(sni).to_bytes(2, "big") + sni)
    versions_ext = b"\x00\x2b\x00\x05\x04\x03\x04\x03\x03"
    exts = sni_ext + versions_ext
    body = (b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
            + b"\x00\x06\x13\x01\x13\x02\xc0\x2f" + b"\x01\x00" + len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def cases() -> list[tuple[str, bytes, list[int], str]]:
    rng = random.Random(7)
    c: list[tuple[str, bytes, list[int], str]] = []

    def add(name: str, data: bytes, statuses: list[int], note: str) -> None:
        c.append((name, data, statuses, note))

    # Baselines: valid requests (200) so the replay also proves the server still answers.
    add("valid_get", OK, [200], "a valid request")
    add("valid_http10_no_host", b"GET / HTTP/1.0\r\n\r\n", [200], "HTTP/1.0 needs no Host")
    add("valid_absolute_form", b"GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", [200],
        "absolute-form URI")
    add("valid_asterisk_options", b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", [200], "asterisk-form")
    add("valid_lowercase_method", b"get / HTTP/1.1\r\nHost: t\r\n\r\n", [501],
        "methods are case-sensitive: 'get' is not a method the server knows")
    add("valid_post_body_then_get", POST + b"Content-Length: 5\r\n\r\nhello" + OK,
        [200, 200], "body discarded, next request served")
    add("valid_pipelined_50", OK * 50, [200] * 50, "50 pipelined requests")
    add("valid_leading_blank_lines", b"\r\n" * 4 + OK, [200], "up to 4 leading CRLFs are skipped")
    # Request line.
    add("bad_five_leading_blank_lines", b"\r\n" * 5 + OK, [400], "more than 4 leading CRLFs")
    add("bad_no_version", b"GET /\r\nHost: t\r\n\r\n", [400], "request line without version")
    add("bad_double_space", b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", [400], "empty target")
    add("bad_tab_separator", b"GET\t/\tHTTP/1.1\r\nHost: t\r\n\r\n", [400], "tabs instead of SP")
    add("bad_trailing_space_version", b"GET / HTTP/1.1 \r\nHost: t\r\n\r\n", [400], "junk after version")
    add("bad_lowercase_version", b"GET / http/1.1\r\nHost: t\r\n\r\n", [400], "version is case-sensitive")
    add("bad_version_letters", b"GET / HTTP/1.x\r\nHost: t\r\n\r\n", [400], "malformed version")
    add("version_http12", b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", [505], "well-formed, unsupported")
    add("version_http20", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", [505], "HTTP/2.0 in an HTTP/1 request")
    add("version_http9", b"GET / HTTP/9\r\n\r\n", [505], "HTTP/9")
    add("http09_simple_request", b"GET /\r\n", [400], "HTTP/0.9 simple request")
    add("h2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [505], "HTTP/2 connection preface")
    add("bad_method_chars", b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n", [400], "'@' is not a tchar")
    add("bad_method_utf8", "GÉT / HTTP/1.1\r\nHost: t\r\n\r\n".encode(), [400], "non-ASCII method")
    add("bad_empty_method", b" / HTTP/1.1\r\nHost: t\r\n\r\n", [400], "empty method")
    add("bad_target_no_slash", b"GET index.html HTTP/1.1\r\nHost: t\r\n\r\n", [400], "relative target")
    add("bad_connect_authority", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", [405],
        "CONNECT is known but not allowed")
    add("bad_target_utf8", "GET /ü HTTP/1.1\r\nHost: t\r\n\r\n".encode(), [400], "raw non-ASCII in target")
    add("bad_target_del", b"GET /\x7f HTTP/1.1\r\nHost: t\r\n\r\n", [400], "DEL in target")
    add("uri_overlong", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", [414], "9 KB target")
    add("method_overlong", b"A" * 9000 + b" / HTTP/1.1\r\nHost: t\r\n\r\n", [414], "9 KB method")
    add("request_line_endless", b"GET /" + b"a" * 70000, [414], "70 KB request line, never finished")
    # Line endings and control bytes.
    add("bare_lf", b"GET / HTTP/1.1\nHost: t\n\n", [400], "LF without CR")
    add("bare_lf_in_headers", b"GET / HTTP/1.1\r\nHost: t\n\r\n", [400], "LF without CR after a header")
    add("bare_cr", b"GET / HTTP/1.1\rHost: t\r\n\r\n", [400], "CR without LF in the request line")
    add("nul_in_method", b"G\x00T / HTTP/1.1\r\nHost: t\r\n\r\n", [400], "NUL in method")
    add("nul_in_target", b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n", [400], "NUL in target")
    add("nul_in_header_value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", [400], "NUL in value")
    add("nul_in_header_name", b"GET / HTTP/1.1\r\nHost: t\r\nX-\x00A: b\r\n\r\n", [400], "NUL in name")
    add("cr_in_header_value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", [400], "lone CR in a value")
    add("only_nuls", b"\x00" * 4096, [], "NULs without a line end: unfinished at EOF")
    add("only_crs", b"\r" * 100, [], "CRs without LF: unfinished at EOF")
    # Headers.
    add("header_no_colon", b"GET / HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", [400], "header without colon")
    add("header_space_before_colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", [400], "space before colon")
    add("header_empty_name", b"GET / HTTP/1.1\r\nHost: t\r\n: v\r\n\r\n", [400], "empty header name")
    add("header_obs_fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", [400], "obs-fold")
    add("header_obs_fold_tab", b"GET / HTTP/1.1\r\n\tHost: t\r\n\r\n", [400], "line starting with a tab")
    add("header_huge_value", b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 17000 + b"\r\n\r\n", [431],
        "17 KB header value (the head limit is 16 KiB)")
    add("header_huge_endless", b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 100000, [431],
        "100 KB header never finished")
    add("header_101_lines", b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-N: 1\r\n" * 100 + b"\r\n", [431],
        "101 header lines")
    add("header_100_lines", b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-N: 1\r\n" * 99 + b"\r\n", [200],
        "100 header lines is the limit")
    add("host_missing", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", [400], "HTTP/1.1 without Host")
    add("host_duplicate", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", [400], "two Host headers")
    add("header_utf8_name", "GET / HTTP/1.1\r\nHost: t\r\nÜ: v\r\n\r\n".encode(), [400], "non-ASCII name")
    # Bodies and framing (smuggling).
    add("cl_and_te", POST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n", [400], "Content-Length with Transfer-Encoding")
    add("te_and_cl_case", POST + b"transfer-encoding: chunked\r\nCONTENT-LENGTH: 0\r\n\r\n",
        [400], "same, other case and order")
    add("te_chunked", POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + OK,
        [200, 200], "chunked body discarded, next request served")
    add("te_chunked_trailers_ext", POST + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n"
        b"0\r\nX-T: 1\r\n\r\n", [200], "chunk extensions and trailers are ignored")
    add("te_gzip_chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", [501],
        "a transfer coding the server lacks")
    add("te_chunked_not_last", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", [400],
        "chunked not final: length unknowable")
    add("chunk_size_bad_hex", POST + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", [400],
        "chunk-size is hex digits only")
    add("chunk_line_endless", POST + b"Transfer-Encoding: chunked\r\n\r\n5;" + b"e" * 5000, [400],
        "chunk-size line above 1 KiB")
    add("chunk_too_large", POST + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", [413],
        "chunk size above the body limit")
    add("chunk_unfinished_at_eof", POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel", [],
        "chunked body cut short")
    add("trailer_endless", POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"t" * 5000, [431],
        "trailer section above 4 KiB")
    add("expect_unknown", POST + b"Expect: something\r\nContent-Length: 1\r\n\r\nx", [417],
        "only 100-continue is an expectation")
    add("method_delete", b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n", [405], "known method, not allowed")
    add("method_unknown", b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", [501], "unknown method")
    add("asterisk_with_get", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", [400], "'*' only with OPTIONS")
    add("absolute_form_other_scheme", b"GET ftp://example.com/ HTTP/1.1\r\nHost: t\r\n\r\n", [400],
        "absolute-form is http(s) only")
    add("absolute_form_no_authority", b"GET http:///x HTTP/1.1\r\nHost: t\r\n\r\n", [400],
        "absolute-form needs an authority")
    add("te_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [400],
        "Transfer-Encoding in HTTP/1.0")
    add("te_space_before_colon", POST + b"Transfer-Encoding : chunked\r\n\r\n", [400],
        "smuggling variant")
    add("cl_conflicting", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        [400], "two different Content-Length values")
    add("cl_duplicate_same", POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        [200], "repeated identical value is accepted")
    add("cl_list", POST + b"Content-Length: 3, 3\r\n\r\nabc", [400], "a list value")
    add("cl_negative", POST + b"Content-Length: -1\r\n\r\n", [400], "negative")
    add("cl_plus", POST + b"Content-Length: +5\r\n\r\nhello", [400], "leading plus")
    add("cl_hex", POST + b"Content-Length: 0x10\r\n\r\n", [400], "hex")
    add("cl_empty", POST + b"Content-Length:\r\n\r\n", [400], "empty value")
    add("cl_inner_space", POST + b"Content-Length: 1 2\r\n\r\n", [400], "1 2")
    add("cl_overflow_u64", POST + b"Content-Length: 99999999999999999999999999\r\n\r\n",
        [413], "beyond 2^64: saturates, 413")
    add("cl_2_pow_64", POST + b"Content-Length: 18446744073709551616\r\n\r\n", [413],
        "2^64 exactly (would wrap to 0)")
    add("cl_too_big", POST + b"Content-Length: 1048577\r\n\r\n", [413], "1 MiB + 1")
    add("cl_body_short_at_eof", POST + b"Content-Length: 100\r\n\r\nabc", [],
        "body cut short by EOF")
    add("cl_smaller_than_body", POST + b"Content-Length: 2\r\n\r\nabcdef\r\n\r\n",
        [200, 400], "the rest of the body is parsed as a (bad) request")
    # Pipelining and unfinished input.
    add("pipelined_garbage_after_valid", OK + b"\x01\x02garbage\r\n\r\n", [200, 400], "junk behind a request")
    add("pipelined_valid_bad_valid", OK + b"BAD\r\n\r\n" + OK, [200, 400], "nothing served after the error")
    add("pipelined_after_close", b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + OK * 3, [200],
        "nothing served after Connection: close")
    add("head_unfinished", b"GET / HTTP/1.1\r\nHost: t\r\n", [], "no blank line before EOF")
    add("empty", b"", [], "connect, send nothing, half-close")
    # Other protocols and junk.
    add("tls_client_hello", tls_client_hello(), [], "TLS ClientHello (binary, no LF: unfinished at EOF)")
    add("ssh_banner", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", [400], "an SSH client")
    add("http_response_as_request", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [400],
        "a response sent as a request")
    add("smtp_helo", b"HELO example.com\r\n", [400], "SMTP")
    add("binary_junk_4k", rng.randbytes(4096).replace(b"\n", b"\x00"), [], "random bytes, no LF: EOF")
    add("binary_junk_with_lf", b"\x8a\xff\x00\x13\n" + rng.randbytes(2000), [400], "random bytes with LF")
    add("utf16_request", "GET / HTTP/1.1\r\nHost: t\r\n\r\n".encode("utf-16"), [400], "UTF-16 encoded")
    add("websocket_frame", b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\r\n", [400], "a masked WS frame")
    return c


def main() -> None:
    for old in HERE.glob("*.txt"):
        old.unlink()
    expected = {}
    for name, data, statuses, note in cases():
        (HERE / f"{name}.txt").write_bytes(data)
        expected[f"{name}.txt"] = {"statuses": statuses, "note": note}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} cases to {HERE}")


if __name__ == "__main__":
    main()
