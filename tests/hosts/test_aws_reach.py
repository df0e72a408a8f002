"""The aws SSH path (hosts.aws.reach: run by doctor and by a run's pre-flight), port 22 from
here: real sockets on this machine's loopback stand in for the public SSH server the probe
reaches, and this machine's own routes answer where it sends from."""

from __future__ import annotations

import socket

import pytest

from orchestrator import cli
from orchestrator.errors import UserError
from orchestrator.hosts.aws import reach
from orchestrator.scenario import Aws

from testkit import listener


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connection is refused
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_ssh_server_answering_is_ok():
    with listener(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        check = reach.outbound(("127.0.0.1", port), timeout=2)
    assert check.status == "ok" and f"127.0.0.1:{port} answered SSH" in check.detail, check.line()


def test_nothing_listening_is_a_fail_with_the_fix():
    port = closed_port()
    check = reach.outbound(("127.0.0.1", port), timeout=2)
    assert check.status == "fail", check.line()
    assert "refused" in check.detail.lower(), check.line()
    assert "outbound TCP port 22" in check.line() and "ssh_address: private" in check.line()


def test_something_else_on_the_port_is_not_an_ssh_path():
    with listener(b"HTTP/1.1 400 Bad Request\r\n") as port:
        check = reach.outbound(("127.0.0.1", port), timeout=2)
    assert check.status == "fail" and "no SSH banner" in check.detail, check.line()


def aws(**kw: object) -> Aws:
    return Aws.model_validate({"region": "eu-west-1", **kw})


def test_ssh_cidr_without_this_machine_fails_naming_both():
    check = reach.ssh_rule(aws(ssh_cidr="198.51.100.0/24"), "172.31.0.0/16", lambda: "203.0.113.7")
    assert check.status == "fail", check.line()
    assert "198.51.100.0/24" in check.detail and "203.0.113.7" in check.detail
    assert "hosts.aws.ssh_cidr=203.0.113.7/32" in check.fix
    inside = reach.ssh_rule(aws(ssh_cidr="203.0.113.0/24"), "172.31.0.0/16", lambda: "203.0.113.7")
    assert inside.status == "ok", inside.line()


def test_no_public_address_is_a_fail_unless_ssh_cidr_says_where():
    def unknown() -> str:
        raise UserError("cannot find this machine's public address via https://checkip.amazonaws.com: "
                        "timed out")

    assert reach.ssh_rule(aws(), "172.31.0.0/16", unknown).status == "fail"
    assert reach.ssh_rule(aws(ssh_cidr="198.51.100.0/24"), "172.31.0.0/16", unknown).status == "warn"
    assert reach.ssh_rule(aws(), "172.31.0.0/16", lambda: "203.0.113.7").status == "ok"


def test_private_addresses_need_a_route_from_inside_the_vpc():
    """This machine's own routing table: it reaches 127.0.0.0/8 from 127.0.0.1 (inside), and a
    network it has no address in (a /30 at the top of 10/8), if at all, from an address outside it."""
    assert reach.source_address("127.0.0.0/8") == "127.0.0.1"
    inside = reach.ssh_rule(aws(ssh_address="private"), "127.0.0.0/8", lambda: pytest.fail("no lookup"))
    assert inside.status == "ok" and "from 127.0.0.1" in inside.detail, inside.line()
    outside = reach.ssh_rule(aws(ssh_address="private"), "10.255.255.252/30",
                             lambda: pytest.fail("no lookup"))
    assert outside.status == "fail" and "10.255.255.252/30" in outside.detail, outside.line()
    assert "hosts.aws.ssh_address: public" in outside.fix
    # ssh_cidr, when set, is what the run's group admits: this machine's VPC-side address against it
    narrow = reach.ssh_rule(aws(ssh_address="private", ssh_cidr="127.0.0.2/32"), "127.0.0.0/8",
                            lambda: pytest.fail("no lookup"))
    assert narrow.status == "fail" and "hosts.aws.ssh_cidr 127.0.0.2/32" in narrow.detail, narrow.line()
    assert "--set hosts.aws.ssh_cidr=127.0.0.1/32" in narrow.fix, narrow.line()


@pytest.mark.parametrize(("text", "want"), [("example.org", ("example.org", 22)),
                                            ("127.0.0.1:2222", ("127.0.0.1", 2222))])
def test_the_probe_flag_takes_host_and_port(text, want):
    assert cli._host_port(text) == want
