import resource

import pytest
import support

ARCHS = support.ARCHS
BUILD_KINDS = ["release", "asan"]


@pytest.fixture(scope="session")
def binaries():
    """Builds the release and the ASan+UBSan flavours once per session."""
    return {kind: support.build(kind) for kind in BUILD_KINDS}


@pytest.fixture(params=[(b, a) for b in BUILD_KINDS for a in ARCHS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def variant(request):
    return request.param


@pytest.fixture
def start_server(binaries, variant):
    """Factory: start_server(*extra_args, threads=2) -> ServerProcess.

    Every server started is stopped at teardown, must exit 0 with a stats
    line (unless the test stopped it itself), and must have no sanitizer
    report on stderr.
    """
    build_kind, arch = variant
    started = []

    def start(*extra, threads=2, preexec_fn=None):
        s = support.ServerProcess(binaries[build_kind], arch, threads=threads, extra=extra,
                                  sanitized=(build_kind == "asan"), preexec_fn=preexec_fn)
        started.append(s)
        return s

    yield start
    for s in started:
        stats = s.stop()
        assert not s.sanitizer_reports(), s.stderr
        assert s.returncode == 0, f"rc={s.returncode} stderr={s.stderr}"
        assert stats is not None and stats["arch"] == arch


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture(scope="session", autouse=True)
def raise_nofile_limit():
    """The slowloris test opens ~1,000 sockets per side; lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
