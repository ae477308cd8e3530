"""slurmkit.remote's sockets: TCP_NODELAY and quick ACKs on what it connects, on a listening socket of this
machine (loopback: no node involved); the live tests check the same on a local cluster's head and jump path."""

from __future__ import annotations

import socket
import threading

import pytest

from slurmkit import remote


@pytest.fixture()
def server():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    got: list[bytes] = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"SSH-2.0-test\r\n")
            got.append(conn.recv(100))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield listener.getsockname(), got
    t.join(5)
    listener.close()


def test_the_socket_has_nodelay_and_reads_with_quick_acks(server):
    (host, port), got = server
    sock = remote._nodelay_socket(host, port, 5)
    try:
        assert isinstance(sock, remote._LowLatencySocket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.gettimeout() == 5
        assert sock.recv(100) == b"SSH-2.0-test\r\n"
        if hasattr(socket, "TCP_QUICKACK"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
        sock.sendall(b"hello")
    finally:
        sock.close()


def test_a_refused_connection_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(OSError) as info:
        remote._nodelay_socket("127.0.0.1", port, 5)
    assert remote._is_connection_error(info.value)


def test_cluster_connections_are_built_with_the_nodelay_class_unless_asked_not_to(tmp_path):
    import fabric

    from slurmkit.cluster import parse_cluster

    cluster = parse_cluster("""
cluster: rs
ssh: {user: root}
heads: {names: rs-head-1, addresses: 127.0.0.1}
nodes:
  - names: rs-node-1
""")
    cls = remote._connection_class()
    assert issubclass(cls, fabric.Connection) and cls is remote._connection_class()
    assert type(remote.ClusterSSH(cluster, tmp_path)._new_connection("127.0.0.1", "root", 22)) is cls
    plain = remote.ClusterSSH(cluster, tmp_path, nodelay=False)._new_connection("127.0.0.1", "root", 22)
    assert type(plain) is fabric.Connection


def test_opening_a_direct_connection_leaves_no_socket_behind_in_its_kwargs(server):
    """The socket handed to paramiko is the connection's own: a failed open (here: no SSH server, only a banner)
    closes it and takes it out of connect_kwargs, so that a retry makes a new one."""
    (host, port), _ = server
    c = remote._connection_class()(host=host, port=port, user="root", connect_timeout=5,
                                   connect_kwargs={"banner_timeout": 5, "auth_timeout": 5, "look_for_keys": False,
                                                   "allow_agent": False})
    with pytest.raises(Exception):
        c.open()
    assert "sock" not in c.connect_kwargs


def test_paramiko_without_invoke_until_an_ssh_config_runs_match_exec():
    """HeadRunner's processes import paramiko without Invoke (115-170 ms of asyncio and unittest.mock); an SSH
    config's ``Match exec`` still runs, importing Invoke then. A fresh interpreter: this one imported both."""
    import subprocess
    import sys

    code = """
import sys
from slurmkit import remote
p = remote._paramiko()
assert "invoke" not in sys.modules and "fabric" not in sys.modules, sorted(m for m in sys.modules if "invoke" in m)
cfg = p.SSHConfig.from_text("Host x\\n  HostName y\\nMatch exec \\"true\\"\\n  User z\\nMatch exec \\"false\\"\\n  Port 7\\n")
assert cfg.lookup("x") == {"hostname": "y", "user": "z"}, cfg.lookup("x")
assert "invoke" in sys.modules
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_head_runner_connects_heads_without_fabric(tmp_path):
    from slurmkit.cluster import parse_cluster

    cluster = parse_cluster("""
cluster: rh
ssh: {user: root, proxy_jump: root@127.0.0.1}
heads: {names: rh-head-1, addresses: 127.0.0.1}
nodes:
  - names: rh-node-1
""")
    runner = remote.HeadRunner(cluster, tmp_path)
    assert runner.ssh.fabric is False and remote.ClusterSSH(cluster, tmp_path).fabric is True
    from slurmkit.slurm import DEFAULT_CONF

    assert runner.slurm_conf == DEFAULT_CONF
