"""The static provider: Ansible inventories (INI and YAML) read by Ansible's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import EXIT_BAD_INPUT, UserError
from orchestrator.hosts import NoMoreHosts, static
from orchestrator.remote import SshTransport
from orchestrator.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]

INI = """\
[server]
srv ansible_host=203.0.113.10 bench_address=10.0.0.10 server_cpus="0,2" bench_interface=ens5

[client]
cli1 ansible_host=203.0.113.11 ansible_user=admin ansible_port=2222
cli2 ansible_host=203.0.113.12

[client:vars]
client_cpus=[1, 3]

[all:vars]
ansible_ssh_private_key_file=/keys/bench
ansible_ssh_common_args='-o UserKnownHostsFile=/keys/known_hosts -o StrictHostKeyChecking=yes'
"""

YAML = """\
all:
  vars:
    ansible_ssh_private_key_file: /keys/bench
    ansible_ssh_common_args: -o UserKnownHostsFile=/keys/known_hosts
  children:
    server:
      hosts:
        srv: {ansible_host: 203.0.113.10, bench_address: 10.0.0.10, server_cpus: "0,2",
              bench_interface: ens5}
    client:
      vars: {client_cpus: [1, 3]}
      hosts:
        cli1: {ansible_host: 203.0.113.11, ansible_user: admin, ansible_port: 2222}
        cli2: {ansible_host: 203.0.113.12}
"""


def _scenario(inventory: str, client: object = 1) -> Scenario:
    return Scenario.model_validate({"name": "static-test", "hosts": {
        "provider": "static", "inventory": inventory, "ssh": {"user": "bench", "connect_timeout": 3},
        "roles": {"server": 1, "client": client}}})


@pytest.mark.parametrize("name,text", [("hosts.ini", INI), ("hosts.yml", YAML)])
def test_ini_and_yaml_give_the_same_hosts(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with static.open_lab(_scenario(str(path)), run_id="r1") as lab:
        srv, cli1, cli2 = lab.hosts
    assert lab.provider == "static" and lab.server is srv and lab.clients == [cli1, cli2]
    assert srv.address == "10.0.0.10"  # bench_address wins for traffic...
    assert srv.ssh.host == "203.0.113.10"  # ...SSH still goes to ansible_host
    assert srv.interface == "ens5" and srv.roles == ("server",)
    assert srv.vars["server_cpus"] in ("0,2", [0, 2])
    assert cli1.vars["client_cpus"] == [1, 3] and cli2.vars["client_cpus"] == [1, 3]
    assert (cli1.ssh.user, cli1.ssh.port) == ("admin", 2222)
    assert (cli2.ssh.user, cli2.ssh.port) == ("bench", 22)  # the scenario's defaults fill the gaps
    for h in lab.hosts:
        assert h.ssh.key_file == "/keys/bench" and h.ssh.known_hosts == "/keys/known_hosts"
        assert h.ssh.host_key_checking and h.ssh.connect_timeout == 3
        assert h.workdir == f"/tmp/orchestrate/static-test-r1/{h.name}"


def test_auto_scale_takes_min_of_the_client_group_first_then_more_of_it(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text(INI)
    with static.open_lab(_scenario(str(path), {"min": 1, "max": 4}), run_id="r1") as lab:
        assert [h.name for h in lab.hosts] == ["srv", "cli1"] and lab.client_limit == 2  # the group's size
        grown, new = lab.grow(1)
        assert [h.name for h in new] == ["cli2"] and [h.name for h in grown.clients] == ["cli1", "cli2"]
        with pytest.raises(NoMoreHosts, match="cannot add 1 client host"):
            grown.grow(1)
    with pytest.raises(UserError, match=r"group 'client' has 2 host\(s\) but hosts.roles.client.min is 3"), \
            static.open_lab(_scenario(str(path), {"min": 3, "max": 4}), run_id="r2"):
        pass


def test_repo_inventories_parse():
    local = static.hosts_from_inventory(REPO / "inventories" / "localhost.ini", run="x")
    assert len(local) == 1 and local[0].ssh is None and local[0].roles == ("server", "client")
    assert local[0].address == "127.0.0.1" and local[0].interface == "lo"
    example = static.hosts_from_inventory(REPO / "inventories" / "example.ini", run="x")
    assert [h.roles for h in example] == [("server",), ("client",)]
    assert example[0].vars["server_cpus"] and example[0].address == "10.0.0.10"


@pytest.mark.parametrize("text,message", [
    ("[client]\nc1\n", r"no group 'server'.*groups found: client"),
    ("[server]\ns1\n", r"no group 'client'"),
    ("[server]\ns1\n[client]\n", r"group 'client' has no hosts"),
    ("all:\n  children:\n    server:\n      hosts: {s1: {}}\n    client: {}\n",
     r"group 'client' has no hosts"),
    ("[server\ns1 x\n", r"not an Ansible inventory"),
])
def test_inventory_mistakes_are_user_errors_naming_the_file(tmp_path, text, message):
    path = tmp_path / ("bad.yml" if text.startswith("all:") else "bad.ini")
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        static.hosts_from_inventory(path, run="x")
    assert str(path) in str(err.value) and err.value.exit_code == EXIT_BAD_INPUT


def test_missing_inventory_file(tmp_path):
    with pytest.raises(UserError, match="no such inventory file"), static.open_lab(
            _scenario(str(tmp_path / "nope.ini")), run_id="r"):
        pass


def test_a_lab_inventory_drives_real_ssh_with_host_keys_checked(lab3):
    """The inventory `lab up` writes is a valid static inventory: its known_hosts is honoured."""
    st, _ = lab3
    with static.open_lab(_scenario(st.inventory), run_id="r2") as lab:
        assert [h.name for h in lab.hosts] == [h.name for h in st.hosts]
        for h in lab.hosts:
            assert h.ssh.known_hosts == st.known_hosts and h.ssh.user == "root"
            assert h.interface == "eth0" and h.vars["orchestrate_root"]
            t = SshTransport(h.ssh)
            try:
                assert h.address in t.run("ip -4 -o addr show dev eth0").stdout
            finally:
                t.close()
