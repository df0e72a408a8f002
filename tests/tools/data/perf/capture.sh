#!/bin/sh
# Re-creates the real perf captures in this folder (run as root from the repo root; needs the
# built server, wrk and perf). Traffic stays on 127.0.0.1; everything started is stopped.
set -eu
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
port=18461

# 1. the project's server under wrk: perf record -p, stopped with SIGINT after 2 s
server/build/release/orchestrate-server --arch reuseport --threads 2 --cpus 0,1 \
  --bind 127.0.0.1 --port $port --body hello >"$tmp/server.out" &
srv=$!
sleep 0.5
timeout 10 wrk -t1 -c16 -d3s http://127.0.0.1:$port/ >/dev/null &
load=$!
sleep 0.5
perf record -e cpu-clock -F 199 -g -p $srv -o "$tmp/server.data" 2>"$out/record_server.stderr" &
rec=$!
sleep 2
kill -INT $rec
wait $rec || true   # perf re-raises SIGINT on exit: 130 here
wait $load
kill -TERM $srv
wait $srv
perf script -i "$tmp/server.data" -F comm,tid,ip,sym,dso >"$out/script_server.txt"

# 2. a busy Python loop, perf script's default format (timestamps, periods, +0x offsets); first 40 samples
/usr/bin/python3 -c 'import time
t = time.time()
while time.time() - t < 2: sum(range(1000))' &
py=$!
sleep 0.3
perf record -e cpu-clock -F 499 -g -p $py -o "$tmp/py.data" 2>/dev/null &
rec=$!
sleep 1
kill -INT $rec
wait $rec || true
wait $py
perf script -i "$tmp/py.data" | awk '/^$/ { n++ } { print } n == 40 { exit }' >"$out/script_default.txt"

# 3. failures, in perf's own words (exit status on the first line)
sleep 5 &
victim=$!
{ runuser -u nobody -- perf record -e cpu-clock -g -p $victim -o /tmp/nobody.data 2>&1 && echo 0 || echo $?; } \
  >"$tmp/p" ; kill $victim
{ tail -n1 "$tmp/p"; sed '$d' "$tmp/p"; } >"$out/record_paranoid.stderr"
{ perf record -e cpu-clock -g -p 999999 -o "$tmp/x.data" 2>"$tmp/e" && echo 0 || echo $?; cat "$tmp/e"; } \
  >"$out/record_nopid.stderr"
{ perf script -i "$tmp/missing.data" 2>"$tmp/e" && echo 0 || echo $?; cat "$tmp/e"; } >"$out/script_missing.stderr"
: >"$tmp/empty.data"
{ perf script -i "$tmp/empty.data" 2>"$tmp/e" && echo 0 || echo $?; cat "$tmp/e"; } >"$out/script_empty.stderr"
# perf record killed hard (SIGKILL): the file exists but its header was never finished
/usr/bin/python3 -c 'import time
t = time.time()
while time.time() - t < 2: pass' &
py=$!
sleep 0.2
perf record -e cpu-clock -g -p $py -o "$tmp/killed.data" 2>/dev/null &
rec=$!
sleep 1
kill -KILL $rec
wait $rec || true
wait $py
{ perf script -i "$tmp/killed.data" -F comm,tid,ip,sym,dso 2>"$tmp/e" >/dev/null && echo 0 || echo $?; cat "$tmp/e"; } \
  >"$out/script_sigkilled.stderr"
