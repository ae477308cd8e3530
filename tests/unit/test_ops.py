"""Pure parts of the slurmkit.ops package: public keys, authorized_keys/known_hosts edits, the SSH config, rsync
argv and stats, scrubbing and the support bundle's severity rules."""

from __future__ import annotations

import base64
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from slurmkit.ops import OpsInputError, bundle, keys, mesh, scrub, sshconfig, sync
from slurmkit.ops.bundle_rules import Diagnosis, HostEvidence, SlurmEvidence, classify, summary_text
from slurmkit.paths import StateDir
from slurmkit.cluster import parse_cluster
from slurmkit.slurm.parsers import Controller, NodeInfo

CLUSTER = """
cluster: tc
ssh: {user: root, identity_file: /keys/id, proxy_jump: root@10.1.0.11, known_hosts: /keys/kh}
heads: {names: tc-head-1, addresses: 10.1.0.11}
nodes:
  - names: tc-node-[1-2]
    addresses: 10.2.0.[11-12]
    sockets: 1
    cores_per_socket: 2
    threads_per_core: 1
    memory_mb: 1000
    rails: 2
    gpus: {type: h100, count: 1}
"""


@pytest.fixture
def cluster():
    return parse_cluster(CLUSTER)


@pytest.fixture
def keypair(tmp_path):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen")
    path = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", str(path)], check=True)
    return path


# ----------------------------------------------------------------------------------------------------- keys


def test_public_key_and_fingerprint_match_ssh_keygen(keypair):
    text = keypair.with_suffix(".pub").read_text()
    key = keys.read_public_key(text, "k.pub")
    lf = subprocess.run(["ssh-keygen", "-lf", str(keypair.with_suffix(".pub"))], capture_output=True, text=True,
                        check=True).stdout.split()
    assert key.type == "ssh-ed25519" and key.comment == "me@laptop"
    assert key.fingerprint == lf[1]
    assert key.line == text.strip()


def test_private_key_is_refused_without_showing_it(keypair):
    text = keypair.read_text()
    with pytest.raises(OpsInputError) as exc:
        keys.read_public_key(text, "k")
    assert "PRIVATE key" in str(exc.value) and exc.value.exit_code == 2
    assert text.splitlines()[1] not in str(exc.value)


@pytest.mark.parametrize("text, message", [
    ("", "no public key"),
    ("ssh-dss AAAAB3NzaC1kc3MAAAA= x", "'ssh-dss' is not accepted"),
    ("ssh-ed25519 !!!notbase64 x", "does not decode"),
    ("justoneword", "not an OpenSSH public key"),
])
def test_bad_key_files(text, message):
    with pytest.raises(OpsInputError, match=message):
        keys.read_public_key(text, "f")


def test_embedded_type_must_match(keypair):
    blob = keypair.with_suffix(".pub").read_text().split()[1]
    with pytest.raises(OpsInputError, match="says ssh-rsa but its data is ssh-ed25519"):
        keys.read_public_key(f"ssh-rsa {blob} x", "f")


def test_two_keys_in_one_file(keypair):
    line = keypair.with_suffix(".pub").read_text().strip()
    with pytest.raises(OpsInputError, match="2 lines"):
        keys.read_public_key(f"{line}\n{line}\n", "f")


def test_authorized_keys_add_compares_type_and_blob_not_comment(keypair):
    key = keys.read_public_key(keypair.with_suffix(".pub").read_text(), "k")
    blob = base64.b64encode(key.blob).decode()
    existing = f"# admins\nfrom=\"10.0.0.0/8\",no-pty ssh-ed25519 {blob} old-comment\n"
    text, changed = keys.authorized_keys_add(existing, key)
    assert not changed and text == existing
    text, changed = keys.authorized_keys_add("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB other", key)
    assert changed and text == f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB other\nssh-ed25519 {blob} me@laptop\n"
    again, changed = keys.authorized_keys_add(text, key)
    assert not changed and again == text


def test_authorized_keys_remove_every_line_of_the_key(keypair):
    key = keys.read_public_key(keypair.with_suffix(".pub").read_text(), "k")
    blob = base64.b64encode(key.blob).decode()
    text = f"ssh-ed25519 {blob} a\n# keep me\nno-pty ssh-ed25519 {blob} b\n"
    out, n = keys.authorized_keys_remove(text, key)
    assert n == 2 and out == "# keep me\n"
    assert keys.authorized_keys_remove(out, key) == (out, 0)


def test_keys_by_fingerprint_gathers_hosts_and_comments(keypair):
    key = keys.read_public_key(keypair.with_suffix(".pub").read_text(), "k")
    other = keys.PublicKey(key.type, key.blob, "me@desktop")
    rsa = keys.parse_key_line("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB admin")
    held = keys.keys_by_fingerprint({"n1": [key, rsa], "n2": [other, key], "n3": []})
    assert list(held) == [key.fingerprint, rsa.fingerprint]
    assert held[key.fingerprint] == keys.KeyHolders("ssh-ed25519", ["me@laptop", "me@desktop"], ["n1", "n2"])
    assert held[rsa.fingerprint] == keys.KeyHolders("ssh-rsa", ["admin"], ["n1"])


# ------------------------------------------------------------------------------------------- ssh config, mesh


def test_ssh_config_names_the_head_entry_as_proxyjump(cluster):
    text = sshconfig.ssh_config_text(cluster, Path("/"))
    blocks = {b.split("\n")[0][5:]: b for b in text.split("\n\n") if b.startswith("Host ")}
    assert list(blocks) == ["tc-head-1", "tc-node-1", "tc-node-2"]
    assert "HostName 10.1.0.11" in blocks["tc-head-1"] and "ProxyJump" not in blocks["tc-head-1"]
    node = blocks["tc-node-2"].splitlines()
    assert "    HostName 10.2.0.12" in node and "    ProxyJump tc-head-1" in node
    assert "    IdentityFile /keys/id" in node and "    UserKnownHostsFile /keys/kh" in node and "    User root" in node


def test_ssh_config_jump_host_outside_the_cluster():
    c = parse_cluster(CLUSTER.replace("proxy_jump: root@10.1.0.11", "proxy_jump: admin@bastion:2222"))
    text = sshconfig.ssh_config_text(c, Path("/"))
    assert "Host tc-jump\n    HostName bastion\n    User admin\n    Port 2222\n" in text
    assert text.count("ProxyJump tc-jump") == 2


def test_host_keys_script_output_and_known_hosts_lines():
    # The shape HOST_KEYS_SCRIPT prints: .pub lines of the sshd's host keys, a marker, `hostname -I`.
    out = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPePCoYKZWHDI+u/kZrQpWXAFh3YYoG9pc68OuogR3p root@h1\n"
           "--addresses--\n10.150.44.11 10.150.45.1 \n")
    keys, addrs = mesh.parse_host_keys(out)
    assert keys == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPePCoYKZWHDI+u/kZrQpWXAFh3YYoG9pc68OuogR3p"]
    assert addrs == ["10.150.44.11", "10.150.45.1"]
    lines = mesh.known_hosts_lines({"h1": mesh.HostKeys(["h1", "10.150.44.11", *addrs], keys)})
    assert lines == [f"h1,10.150.44.11,10.150.45.1 {keys[0]}"]


def test_merge_known_hosts_replaces_stale_keeps_others():
    new = "n1,10.0.0.1 ssh-ed25519 AAAAnew"
    text = "n1 ssh-ed25519 AAAAold\nother ssh-rsa AAAAx\n|1|hashed= ssh-ed25519 AAAAh\n"
    out, changed = mesh.merge_known_hosts(text, [new])
    assert changed and out == f"other ssh-rsa AAAAx\n|1|hashed= ssh-ed25519 AAAAh\n{new}\n"
    assert mesh.merge_known_hosts(out, [new]) == (out, False)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_mesh_key_is_made_once_in_the_state_dir(tmp_path, cluster):
    cluster_file = tmp_path / "c.yaml"
    state = StateDir.of(cluster_file)
    private, public = mesh.mesh_key(cluster_file, cluster)
    assert state.mesh_key.read_bytes() == private and state.mesh_key.stat().st_mode & 0o777 == 0o600
    assert state.mesh_public_key.read_text().strip() == public and public.endswith(" slurmkit-mesh-tc")
    assert keys.read_public_key(public, "mesh").type == "ssh-ed25519"
    assert sorted(p.name for p in state.root.iterdir()) == ["mesh_ed25519", "mesh_ed25519.pub"]  # no temp left
    assert mesh.mesh_key(cluster_file, cluster) == (private, public)


# ------------------------------------------------------------------------------------------------------ sync


def test_rsync_argv_goes_through_the_jump_with_identity_and_known_hosts(cluster):
    node = next(h for h in cluster.hosts() if h.name == "tc-node-1")
    argv = sync.rsync_argv(cluster, Path("/"), node, "data", "/dest", delete=True)
    assert argv[-2:] == ["data/", "root@10.2.0.11:/dest/"] and "--delete" in argv
    ssh = shlex.split(argv[argv.index("-e") + 1])
    proxy = next(o for o in ssh if o.startswith("ProxyCommand="))
    jump = shlex.split(proxy.split("=", 1)[1])
    assert jump[-3:] == ["-W", "%h:%p", "root@10.1.0.11"]
    for argv_ in (ssh, jump):
        assert "/keys/id" in argv_ and "UserKnownHostsFile=/keys/kh" in argv_ and "StrictHostKeyChecking=yes" in argv_
    head = cluster.hosts()[0]
    assert not any("ProxyCommand" in o for o in shlex.split(sync.rsync_argv(cluster, Path("/"), head, "d", "/x")[6]))


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_parse_rsync_output_of_a_real_local_run(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("12345")
    (src / "sub" / "b").write_bytes(b"x" * 1000)

    def run() -> sync.SyncResult:
        argv = ["rsync", "-a", "--itemize-changes", "--stats", str(src) + "/", str(dst) + "/"]
        return sync.parse_rsync_output(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)

    first = run()
    assert first.files == 2 and first.bytes == 1005
    assert sorted(i.split()[-1] for i in first.itemized if i[1] == "f") == ["a", "sub/b"]
    second = run()
    assert (second.files, second.bytes, second.itemized) == (0, 0, [])


# ------------------------------------------------------------------------------------------------- scrubbing


@pytest.mark.parametrize("text, secret", [
    ("AccountingStoragePass=hunter2xyz\n", "hunter2xyz"),
    ("password: s3cr3t-value\n", "s3cr3t-value"),
    ('{"api_key": "abcd1234efgh"}', "abcd1234efgh"),
    ("export HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyzABCDEF\n", "hf_abcdefghijklmnopqrstuvwxyzABCDEF"),
    ("Authorization: Bearer eyJhbGciOi.abc.def-ghi\n", "eyJhbGciOi.abc.def-ghi"),
    ("git clone https://user:ghp_pw1234@github.com/x/y\n", "ghp_pw1234"),
    ("key ghp_abcdefghijklmnopqrstuvwxyz0123456789AB seen\n", "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"),
    ("aws AKIAABCDEFGHIJKLMNOP\n", "AKIAABCDEFGHIJKLMNOP"),
])
def test_scrub_patterns(text, secret):
    out = scrub.scrub(text)
    assert secret not in out and "[REDACTED" in out


def test_scrub_keeps_ordinary_config():
    text = "AuthType=auth/munge\nCredType=cred/munge\nSlurmctldPort=6817\n"
    assert scrub.scrub(text) == text


def test_scrub_private_key_and_munge_key(keypair):
    priv = keypair.read_text()
    out = scrub.scrub(f"before\n{priv}after\n")
    assert "PRIVATE KEY" not in out and priv.splitlines()[1] not in out and out.startswith("before\n") and out.endswith("after\n")
    munge = bytes(range(256)) * 4
    assert "munge key" in scrub.scrub("x" + munge.decode("latin-1"), munge)
    assert "munge key" in scrub.scrub("k=" + base64.b64encode(munge).decode(), munge)


def test_bundle_tar_holds_each_member_under_its_top_folder(tmp_path):
    out = tmp_path / "sub" / "b.tar.gz"
    bundle.write_tar(out, "top", {"SUMMARY.txt": "ok\n", "hosts/n1/daemons.txt": "slurmd: running\n"}, 1700000000)
    assert out.stat().st_mode & 0o777 == 0o600 and [p.name for p in out.parent.iterdir()] == ["b.tar.gz"]
    with tarfile.open(out) as tar:
        assert tar.getnames() == ["top/SUMMARY.txt", "top/hosts/n1/daemons.txt"]
        assert tar.extractfile("top/hosts/n1/daemons.txt").read() == b"slurmd: running\n"
        assert tar.getmember("top/SUMMARY.txt").mtime == 1700000000


# ------------------------------------------------------------------------------------------------ severity


def healthy(cluster, **over):
    hosts = {h.name: HostEvidence(h.name, h.role, daemons={"slurmctld" if h.role == "head" else "slurmd": True,
                                                               "munged": True}, ib_active=2)
             for h in cluster.hosts()}
    nodes = [NodeInfo(n, "IDLE") for n in cluster.compute_names]
    slurm = SlurmEvidence("Slurmctld(primary) at tc-head-1 is UP\n", [Controller("tc-head-1", "primary", True)],
                              nodes)
    return slurm, hosts


def titles(findings):
    return [(f.severity, f.title) for f in findings]


def test_healthy_cluster_has_no_finding(cluster):
    slurm, hosts = healthy(cluster)
    assert classify(cluster, slurm, hosts, {}) == []


def test_controller_down_is_severity_1(cluster):
    slurm, hosts = healthy(cluster)
    slurm = SlurmEvidence("Slurmctld(primary) at tc-head-1 is DOWN\n", [Controller("tc-head-1", "primary", False)],
                              None, "slurm_load_node error: Unable to contact slurm controller")
    hosts["tc-head-1"].daemons["slurmctld"] = False
    f = classify(cluster, slurm, hosts, {})
    assert titles(f) == [(1, "controller down: no slurmctld answers")]
    assert "tc-head-1: slurmctld is not running" in f[0].evidence


def test_no_usable_node_is_severity_1(cluster):
    slurm, hosts = healthy(cluster)
    slurm.nodes = [NodeInfo("tc-node-1", "DOWN", ("NOT_RESPONDING",)), NodeInfo("tc-node-2", "IDLE", ("DRAIN",), "bad")]
    f = classify(cluster, slurm, hosts, {})
    assert titles(f) == [(1, "no compute node usable"), (2, "1 compute node(s) down"), (2, "1 node(s) drained")]


def test_slurmd_stopped_or_host_unreachable_is_severity_2(cluster):
    slurm, hosts = healthy(cluster)
    hosts["tc-node-2"].daemons["slurmd"] = False
    f = classify(cluster, slurm, hosts, {})
    assert titles(f) == [(2, "1 compute node(s) down")] and f[0].hosts == ["tc-node-2"]
    hosts["tc-node-2"] = HostEvidence("tc-node-2", "compute", error="unreachable: refused")
    f = classify(cluster, slurm, hosts, {})
    assert titles(f) == [(2, "1 compute node(s) down")] and "unreachable" in f[0].evidence[0]


def test_one_node_drained_for_maintenance_is_severity_3_otherwise_2(cluster):
    slurm, hosts = healthy(cluster)
    slurm.nodes[0] = NodeInfo("tc-node-1", "IDLE", ("DRAIN",), "maintenance")
    assert titles(classify(cluster, slurm, hosts, {})) == [(3, "one node drained for maintenance")]
    slurm.nodes[0] = NodeInfo("tc-node-1", "IDLE", ("DRAIN",), "ECC errors")
    assert titles(classify(cluster, slurm, hosts, {})) == [(2, "1 node(s) drained")]


def test_rail_bench_drift_and_failover(cluster):
    slurm, hosts = healthy(cluster)
    hosts["tc-node-1"].ib_active = 1
    hosts["tc-node-1"].ib_ports = ["mlx5_0/1 ACTIVE", "mlx5_1/1 DOWN"]
    hosts["tc-node-2"].etc_slurm = {"slurm.conf": "A=1\nB=2\n"}
    bench = {"id": "r1", "verdict": {"passed": False, "reasons": ["busbw 10 < 300"]}, "nodes": ["tc-node-1"]}
    slurm.controllers = [Controller("tc-head-1", "primary", False), Controller("tc-head-2", "backup1", True)]
    f = classify(cluster, slurm, hosts, {"slurm.conf": "A=1\nB=3\n"}, bench)
    assert titles(f) == [(2, "primary controller down; a backup has taken over"), (2, "InfiniBand rail down"),
                         (2, "bench failing (run r1)"), (3, "config drift")]
    assert "mlx5_1/1 DOWN" in f[1].evidence[0] and f[2].evidence == ["busbw 10 < 300"]
    assert "-B=3" in f[3].evidence[0] and "+B=2" in f[3].evidence[0]


def test_summary_text_lists_evidence():
    text = summary_text("tc", [Diagnosis(2, "1 compute node(s) down", ["n2: slurmd is not running"], ["n2"])], "t")
    assert "Overall: Severity 2" in text and "[Severity 2] 1 compute node(s) down (n2)" in text
    assert "    - n2: slurmd is not running" in text
    assert "no incident" in summary_text("tc", [], "t")


# ------------------------------------------------------------------- nodes drained by slurmkit (health, bench)
# The node records are parsed from the real `scontrol -o show node` line of a drained node captured from Slurm
# 22.05.8 (tests/fixtures/slurm-22.05/scontrol-o-show-node-drain.txt, State=IDLE+DRAIN); for slurmkit's drains
# only that line's Reason= value is substituted (the text after "Reason=" replaced), nothing else.

DRAIN_LINE = (Path(__file__).resolve().parents[1] / "fixtures" / "slurm-22.05" /
              "scontrol-o-show-node-drain.txt").read_text()
ONE_NODE = """
cluster: tc
ssh: {user: root}
heads: {names: tc-head-1, addresses: 10.1.0.11}
nodes:
  - names: sk-one
    addresses: 127.0.0.1
    sockets: 1
    cores_per_socket: 2
    threads_per_core: 1
    memory_mb: 4000
"""


def drained_node(reason: str | None = None):
    """The captured drained node, its Reason= replaced by ``reason`` (None: as captured, an admin's drain)."""
    from slurmkit.slurm.parsers import parse_scontrol_nodes

    text = DRAIN_LINE
    if reason is not None:
        head, sep, _ = text.partition("Reason=")
        assert sep, "the captured line has a Reason="
        text = f"{head}Reason={reason} [root@2026-11-21T23:10:35]\n"
    (node,) = parse_scontrol_nodes(text)
    assert node.state_text == "IDLE+DRAIN"
    return node


def one_node(node):
    cluster = parse_cluster(ONE_NODE)
    hosts = {h.name: HostEvidence(h.name, h.role, daemons={"slurmctld" if h.role == "head" else "slurmd": True,
                                                               "munged": True}) for h in cluster.hosts()}
    slurm = SlurmEvidence("Slurmctld(primary) at tc-head-1 is UP\n", [Controller("tc-head-1", "primary", True)], [node])
    return cluster, slurm, hosts


def test_node_drained_by_a_health_check_is_severity_2_naming_the_check_and_evidence(cluster):
    c, slurm, hosts = one_node(drained_node("slurmkit:gpu-count 7/8 GPUs (/dev/nvidia*)"))
    f = classify(c, slurm, hosts, {})
    assert titles(f) == [(1, "no compute node usable"), (2, "1 node(s) drained by slurmkit")]
    assert f[1].hosts == ["sk-one"]
    assert f[1].evidence == ["sk-one: drained by slurmkit (health check gpu-count): gpu-count 7/8 GPUs (/dev/nvidia*) "
                             "(IDLE+DRAIN, reason: slurmkit:gpu-count 7/8 GPUs (/dev/nvidia*) [root@2026-11-21T23:10:35])"]
    # a second, healthy node keeps the cluster usable: the drain alone is Severity 2, not 3
    c2 = parse_cluster(ONE_NODE + ONE_NODE.split("nodes:\n", 1)[1].replace("sk-one", "sk-two").replace(".1\n", ".2\n"))
    hosts["sk-two"] = HostEvidence("sk-two", "compute", daemons={"slurmd": True, "munged": True})
    slurm.nodes.append(NodeInfo("sk-two", "IDLE"))
    assert titles(classify(c2, slurm, hosts, {})) == [(2, "1 node(s) drained by slurmkit")]


def test_node_drained_by_bench_is_severity_2_with_the_busbw_evidence():
    c, slurm, hosts = one_node(drained_node("slurmkit:bench busbw 12.1 < 40 GB/s"))
    f = [d for d in classify(c, slurm, hosts, {}) if d.severity == 2]
    assert titles(f) == [(2, "1 node(s) drained by slurmkit")]
    assert f[0].evidence[0].startswith("sk-one: drained by slurmkit (bench): bench busbw 12.1 < 40 GB/s (IDLE+DRAIN")


def test_admin_drain_of_the_captured_node_is_not_slurmkits():
    c, slurm, hosts = one_node(drained_node())  # Reason=fixture: drained by hand, as captured
    assert [d.title for d in classify(c, slurm, hosts, {})] == ["no compute node usable", "1 node(s) drained"]
    c, slurm, hosts = one_node(drained_node("maintenance"))
    assert titles(classify(c, slurm, hosts, {}))[1:] == [(3, "one node drained for maintenance")]


def test_drained_by_slurmkit_carries_the_last_health_result_from_the_history(tmp_path):
    from slurmkit.health.policy import Store, last_results

    store = Store(StateDir.of(tmp_path / "cluster.yaml").health_dir)
    store.append({"time": 1796000000.0, "nodes": {"sk-one": {"ok": True, "failing": [], "action": "none"}}})
    store.append({"time": 1796000060.0, "nodes": {"sk-one": {
        "ok": False, "failing": [{"id": "gpu-count", "ok": False, "message": "7/8"}], "action": "drained",
        "slurm_reason": "slurmkit:gpu-count 7/8"}}})
    store.append({"time": 1796000120.0, "nodes": {"sk-one": {"ok": None, "failing": [], "error": "unreachable"}}})
    health = last_results(store.history())
    assert health["sk-one"]["time"] == 1796000060.0 and health["sk-one"]["ok"] is False  # the unchecked run skipped
    c, slurm, hosts = one_node(drained_node("slurmkit:gpu-count 7/8"))
    (d,) = [d for d in classify(c, slurm, hosts, {}, None, health) if d.severity == 2]
    assert d.evidence[1] == "sk-one: last health run 2026-11-30 00:54:20 UTC: failing gpu-count 7/8"
    # a node with no history: only the reason's evidence
    (d,) = [d for d in classify(c, slurm, hosts, {}, None, {}) if d.severity == 2]
    assert len(d.evidence) == 1
