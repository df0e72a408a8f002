#!/usr/bin/env bash
# The one set-up entry point for a fresh Debian 12 machine, run as root.
#   ./setup.sh run  [orchestrate run args]   install, then run the embedded loopback scenario
#   ./setup.sh test [pytest args]            install (with test extras), then run the whole suite
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-run}; shift || true

# What `run` needs on the machine that drives a local (loopback) experiment.
RUN_PACKAGES=(python3 python3-venv python3-dev git ca-certificates wrk iperf3 sysstat
              g++ cmake make procps psmisc iproute2 util-linux openssh-client sshpass
              liburing-dev)
# What the test suite adds: real sshd hosts in namespaces, nginx as a reference
# server, clang for the parser fuzz target, perf and chromium for the reports,
# third-party HTTP clients for server/tests/test_clients.py.
TEST_PACKAGES=(openssh-server nginx-light clang libclang-rt-14-dev linux-perf
               chromium ethtool strace apache2-utils nghttp2-client httperf curl)

need=()
packages=("${RUN_PACKAGES[@]}")
[ "$mode" = test ] && packages+=("${TEST_PACKAGES[@]}")
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# Debian's own python3, in a venv: the system one is externally managed (PEP 668).
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
extras=""
[ "$mode" = test ] && extras="[test]"
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".$extras"
  touch "$stamp"
fi
ln -sf "$PWD/.venv/bin/orchestrate" /usr/local/bin/orchestrate

case "$mode" in
  run)
    exec .venv/bin/orchestrate run "$@" ;;
  test)
    set +e
    .venv/bin/python -m pytest "$@"
    rc=$?
    # pytest's 5 means it collected nothing: that is a failure, not a pass.
    [ $rc -eq 5 ] && echo "setup: pytest collected no tests" >&2
    exit $rc ;;
  install)
    echo "setup: installed; run 'orchestrate --help'" ;;
  *)
    echo "usage: ./setup.sh run|test|install [args]" >&2; exit 2 ;;
esac
