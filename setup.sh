#!/usr/bin/env bash
# The one set-up entry point for a fresh Debian 12 machine, run as root.
#   ./setup.sh run  [orchestrate run args]   install, then run the embedded loopback scenario
#   ./setup.sh test [pytest args]            install (with test extras), then run the whole suite
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-run}; shift || true

# What `run` needs for every shipped scenario on this machine: the loopback ones (load,
# telemetry, the server's build), the netns lab's (sshd per host, ip/tc for links and
# caps) and nginx.yaml's server. orchestrator/packages.py maps each tool to one of these;
# tests/test_packages.py checks that every tool a shipped scenario uses is in this list.
# ccache: every build of server/ and loadgen/ goes through it where it is installed
# (cpp-common/cmake/Conventions.cmake), so identical sources compile once per machine.
# Installing openssh-server and nginx-light also enables their system services (port 22,
# port 80); the lab and nginx.yaml start their own instances and need neither.
RUN_PACKAGES=(python3 python3-venv python3-dev git ca-certificates wrk iperf3 sysstat
              g++ cmake make ccache procps psmisc iproute2 util-linux openssh-client sshpass
              liburing-dev openssh-server nginx-light)
# What the test suite adds: clang for the parser fuzz target, perf and chromium for the
# reports, third-party HTTP clients for server/tests/test_clients.py.
TEST_PACKAGES=(clang libclang-rt-14-dev linux-perf
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
