"""slurmkit.adopt: real slurm.conf/gres.conf/topology.conf -> a cluster file that validates and renders back to
configs Slurm reads the same way (compared through slurmkit.slurm.conf on both sides, and Slurm's own
`scontrol show hostnames` for every hostlist), with findings and not-kept lines for the rest."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from slurmkit import adopt as ad
from slurmkit import hostlist
from slurmkit.cluster import cluster_notes, cross_check, dump_cluster, parse_cluster
from slurmkit.render import render_cluster
from slurmkit.slurm import conf as sc
from tests.conftest import FIXTURES

CONF = FIXTURES / "slurm-conf"
ADOPTABLE = ["debian-cgroup", "debian-simple", "llnl-dev-default-lines", "neptrain-controlmachine", "nvidia-circe-superpod",
             "ocotillo-multi-gpu"]


def originals(d: str) -> ad.Configs:
    p = CONF / d
    return ad.Configs(
        sc.read_slurm_conf(p / "slurm.conf"),
        sc.read_gres_conf(p / "gres.conf") if (p / "gres.conf").exists() else None,
        sc.read_topology_conf(p / "topology.conf") if (p / "topology.conf").exists() else None,
    )


def adopted(o: ad.Configs) -> ad.Adopted:
    return ad.adopt(o.conf, o.gres, o.switches)


def test_every_adoptable_fixture_is_listed():
    dirs = sorted(p.name for p in CONF.iterdir() if (p / "slurm.conf").exists())
    assert set(ADOPTABLE) == set(dirs)  # neptrain (one host, controller and compute node) too, since issue 17


@pytest.mark.parametrize("d", ADOPTABLE)
def test_the_adopted_file_validates_and_its_text_parses_back(d):
    a = adopted(originals(d))
    cluster = parse_cluster(a.text([d]), d)
    assert cross_check(cluster) == []
    assert yaml.safe_load(a.text([d])) == a.data


# What Slurm reads differently after the round trip, per fixture: each one is a not-kept line of the adoption.
EXPECTED_DIFFS = {
    "debian-cgroup": [],
    "debian-simple": [],
    # controllers that are also compute nodes are kept as both: dev0 and dev1 read back as nodes of debug
    "llnl-dev-default-lines": [],
    "neptrain-controlmachine": [],
    "nvidia-circe-superpod": [f"switches: s{i} missing" for i in range(5)],
    # several GPU types are kept (a gpus: list): visualizacion1 reads back with both, nothing differs
    "ocotillo-multi-gpu": [],
}


@pytest.mark.parametrize("d", ADOPTABLE)
def test_render_of_the_adopted_file_reads_as_the_original(d):
    o = originals(d)
    a = adopted(o)
    diffs = ad.round_trip(o, a)
    assert [x[: len(e)] for x, e in zip(diffs, EXPECTED_DIFFS[d])] == EXPECTED_DIFFS[d] and len(diffs) == len(EXPECTED_DIFFS[d])


def test_llnl_sample_controllers_in_order_with_addresses_and_as_compute_nodes():
    o = originals("llnl-dev-default-lines")
    a = adopted(o)
    assert a.data["heads"] == {"names": "dev0,dev1", "addresses": "12.34.56.78,12.34.56.79"}
    # dev0 and dev1, the controllers, are compute nodes too: kept in heads and in nodes (once kept as heads only)
    assert a.data["nodes"] == [{"names": "dev[0-25]", "addresses": "edev[0-25]", "sockets": 2, "cores_per_socket": 1,
                                "threads_per_core": 1, "memory_mb": 2000, "weight": 16}]
    assert [p["name"] for p in a.data["partitions"]] == ["debug", "batch", "long"]
    assert a.data["partitions"][2] == {"name": "long", "nodes": "dev[9-17]", "max_time": "120",
                                       "options": {"MaxNodes": "10", "State": "UP", "AllowGroups": "admin"}}
    assert [n.split(": ", 1)[1] for n in a.notes] == [
        f"dev{i} is a controller and a compute node: kept as both (in heads and in nodes; slurmctld and slurmd run on it)"
        for i in (0, 1)]
    assert not any("controller and a compute node" in f for f in a.findings) and not any("kept as head" in n for n in a.not_kept)
    assert a.data["partitions"][0]["nodes"] == "dev[0-8,18-25]"
    assert "# Notes:" in a.text(["x"])
    c = parse_cluster(a.text(["x"]))
    assert c.heads_also_computes == ["dev0", "dev1"] and [str(p) for p in cluster_notes(c)] == [
        "nodes[0].names: dev[0-1]: also a head: a controller that is also a compute node (SlurmctldHost and NodeName "
        "both name it; it runs slurmctld and slurmd)"]
    # reached over SSH by the controllers' addresses; Slurm's NodeAddr stays edevN
    assert [(h.name, h.address, h.role, h.also_compute) for h in c.hosts()[:3]] == [
        ("dev0", "12.34.56.78", "head", True), ("dev1", "12.34.56.79", "head", True), ("dev2", "edev2", "compute", False)]
    conf = render_cluster(c).files["slurm.conf"]
    assert "NodeName=dev[0-25] NodeAddr=edev[0-25] " in conf and "PartitionName=debug Nodes=dev[0-8,18-25] " in conf
    assert any("NodeName=dev[0-25] TmpDisk=64000" in n for n in a.not_kept)
    assert any("DownNodes=dev20" in n for n in a.not_kept)
    # the controllers' addresses: kept for SSH; a not-kept line only while the rendered SlurmctldHost lacks them
    rendered = sc.parse_slurm_conf(render_cluster(parse_cluster(dump_cluster(a.data))).files["slurm.conf"])
    lost = [c for c in rendered.controllers if c.addr is None]
    assert len([n for n in a.not_kept if "SlurmctldHost=dev" in n and "kept for SSH" in n]) == len(lost)
    assert a.data["state_dir"] == "/var/spool/slurm.state" and a.data["slurm_conf"]["SlurmctldPort"] == "7002"


def test_superpod_old_controller_style_and_a_switch_naming_nodes_slurm_conf_lacks():
    a = adopted(originals("nvidia-circe-superpod"))
    assert a.data["heads"] == "circe-login" and a.data["cluster"] == "ngc"
    assert a.data["nodes"][0]["names"] == "circe-n[001-098]"
    assert any("switch s0 names node(s) slurm.conf does not define: n[019-020]" in f for f in a.findings)
    assert any("topology not kept" in n and "circe-n[019-020,059,081-098]" in n for n in a.not_kept)
    batch = a.data["partitions"][0]
    assert batch["default"] is True and batch["options"]["OverSubscribe"] == "EXCLUSIVE"
    assert a.data["slurm_conf"]["SelectType"] == "select/linear"  # kept verbatim, render applies it last
    rendered = render_cluster(parse_cluster(dump_cluster(a.data))).files["slurm.conf"]
    assert "SelectType=select/linear" in rendered and "SelectType=select/cons_tres" not in rendered


def test_ocotillo_several_gpu_types_sockets_per_board_and_gres_files():
    a = adopted(originals("ocotillo-multi-gpu"))
    groups = {g["names"]: g for g in a.data["nodes"]}
    assert groups["ibtesla"]["gpus"] == {"type": "v100", "count": 4, "files": "/dev/nvidia[0-3]"}
    assert groups["ibnodo[1-2]"]["sockets"] == 8 and groups["ibnodo[1-2]"]["features"] == ["gpu", "interlagos"]
    # several GPU types: kept as a gpus: list with each type's gres.conf File= (once a "not kept" line)
    assert groups["visualizacion1"]["gpus"] == [{"type": "gtx970", "count": 1, "files": "/dev/nvidia0"},
                                                {"type": "gtx1060", "count": 1, "files": "/dev/nvidia1"}]
    assert not any("several GPU types" in n or "visualizacion1 Gres" in n for n in a.not_kept)
    r = render_cluster(parse_cluster(a.text(["ocotillo-multi-gpu"])))
    assert "NodeName=visualizacion1 " in r.files["slurm.conf"] and "Gres=gpu:gtx970:1,gpu:gtx1060:1 " in r.files["slurm.conf"]
    assert [ln for ln in r.files["gres.conf"].splitlines() if "visualizacion1" in ln] == [
        "NodeName=visualizacion1 Name=gpu Type=gtx970 File=/dev/nvidia0",
        "NodeName=visualizacion1 Name=gpu Type=gtx1060 File=/dev/nvidia1"]


def test_a_one_host_cluster_is_its_own_head_and_compute_node():
    # neptrain: ControlMachine=aboy and NodeName=aboy, partition aboy. Once "nothing to adopt" (no compute node
    # other than the controllers); since issue 17 a head that is also a compute node is kept as both.
    a = adopted(originals("neptrain-controlmachine"))
    assert a.data["heads"] == "aboy" and [g["names"] for g in a.data["nodes"]] == ["aboy"]
    assert [p["nodes"] for p in a.data["partitions"]] == ["aboy"]
    c = parse_cluster(a.text(["neptrain"]))
    assert [(h.name, h.role, h.also_compute) for h in c.hosts()] == [("aboy", "head", True)]
    conf = render_cluster(c).files["slurm.conf"]
    assert "SlurmctldHost=aboy\n" in conf and "NodeName=aboy " in conf and "PartitionName=aboy Nodes=aboy " in conf


def test_hand_written_config_with_topology_affinity_and_include_round_trips(tmp_path: Path):
    (tmp_path / "nodes.conf").write_text(
        "NodeName=DEFAULT Sockets=2 CoresPerSocket=8 ThreadsPerCore=2 RealMemory=64000\n"
        "NodeName=g[1-4] Gres=gpu:h100:4 NodeAddr=10.0.0.[1-4]\n"
    )
    (tmp_path / "slurm.conf").write_text(
        "ClusterName=Big.Lab\nSlurmctldHost=ctl1(10.0.9.1)\nSlurmctldHost=ctl2(10.0.9.2)\n"
        "NodeName=c[1-2] CPUs=8 RealMemory=1000\nInclude nodes.conf\n"
        "PartitionName=gpu Nodes=g[1-4] Default=YES MaxTime=1-00:00:00 OverSubscribe=NO\n"
        "PartitionName=all Nodes=ALL\n"
        "TopologyPlugin=topology/tree\n"
    )
    gres = "NodeName=g[1-4] Name=gpu Type=h100 File=/dev/nvidia[0-3] Cores=0-7\n"
    topo = "SwitchName=l1 Nodes=g[1-2]\nSwitchName=l2 Nodes=g[3-4],c[1-2],x9\nSwitchName=top Switches=l[1-2]\n"
    o = ad.Configs(sc.read_slurm_conf(tmp_path / "slurm.conf"), sc.parse_gres_conf(gres), sc.parse_topology_conf(topo))
    a = adopted(o)
    assert a.data["cluster"] == "big-lab" and a.data["slurm_conf"]["ClusterName"] == "Big.Lab"
    groups = {x["names"]: x for x in a.data["nodes"]}
    g = groups["g[1-4]"]
    assert (g["names"], g["addresses"], g["gpus"]) == ("g[1-4]", "10.0.0.[1-4]", {"type": "h100", "count": 4, "files": "/dev/nvidia[0-3]"})
    assert groups["c[1-2]"]["sockets"] == 8  # CPUs without a layout: one-core sockets, as slurmctld reads it
    assert a.data["topology"] == {"switches": [{"name": "l1", "nodes": "g[1-2]"}, {"name": "l2", "nodes": "c[1-2],g[3-4]"},
                                               {"name": "top", "switches": "l1,l2"}]}
    assert any("switch l2 names node(s) slurm.conf does not define: x9" in f for f in a.findings)
    assert any("Cores=0-7 (GPU affinity)" in n for n in a.not_kept)
    assert any("include lines are flattened" in n for n in a.not_kept)
    diffs = ad.round_trip(o, a)
    # affinity is the one thing lost; switch l2 loses the undefined x9
    assert diffs == [
        "nodes: g1 affinity: [('gpu', 'h100', '0-7')] -> []", "nodes: g2 affinity: [('gpu', 'h100', '0-7')] -> []",
        "nodes: g3 affinity: [('gpu', 'h100', '0-7')] -> []", "nodes: g4 affinity: [('gpu', 'h100', '0-7')] -> []",
        "switches: l2: (['c1', 'c2', 'g3', 'g4', 'x9'], []) -> (['c1', 'c2', 'g3', 'g4'], [])",
    ]


def test_findings_for_duplicate_nodes_and_partitions_naming_undefined_nodes():
    c = sc.parse_slurm_conf("SlurmctldHost=h\nNodeName=n[1-2] CPUs=4\nNodeName=n2 CPUs=8\nPartitionName=p Nodes=n[1-3]\n")
    a = ad.adopt(c)
    assert any("node n2 defined again with different hardware" in f for f in a.findings)
    assert any("partition p names undefined node(s) n3" in f for f in a.findings)
    assert a.data["partitions"] == [{"name": "p", "nodes": "n[1-2]"}]
    assert cross_check(parse_cluster(dump_cluster(a.data))) == []
    text = a.text(["slurm.conf"])
    assert "# Findings in the originals:" in text and "#   slurm.conf:3: node n2 defined again" in text


def test_cpus_that_count_cores_only_is_a_not_kept_line():
    c = sc.parse_slurm_conf("SlurmctldHost=h\nNodeName=n1 CPUs=8 Sockets=1 CoresPerSocket=8 ThreadsPerCore=2\n")
    a = ad.adopt(c)
    assert any("CPUs=8: render writes CPUs=16" in n for n in a.not_kept)


def _scontrol_hostnames(expr: str, conf: Path) -> list[str]:
    out = subprocess.run(["scontrol", "show", "hostnames", expr], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "SLURM_CONF": str(conf)})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="Slurm's scontrol is not installed")
@pytest.mark.parametrize("d", ADOPTABLE)
def test_slurm_expands_every_rendered_hostlist_as_the_reader_does(d, tmp_path: Path):
    """Slurm's own hostlist code (scontrol show hostnames, Debian's 22.05) on every NodeName, NodeAddr,
    partition Nodes and switch Nodes of the rendered files, against the original's node sets."""
    o = originals(d)
    files = render_cluster(parse_cluster(dump_cluster(adopted(o).data))).files
    minimal = tmp_path / "slurm.conf"
    minimal.write_text("ClusterName=x\nSlurmctldHost=localhost\n")
    exprs = []
    for rec in sc.logical_lines(files["slurm.conf"], "rendered"):
        for k, v in rec.pairs:
            if k in ("NodeName", "NodeAddr", "Nodes"):
                exprs.append(v)
    for rec in sc.logical_lines(files.get("topology.conf", ""), "rendered"):
        exprs += [v for k, v in rec.pairs if k == "Nodes"]
    assert exprs
    for e in exprs:
        assert _scontrol_hostnames(e, minimal) == hostlist.expand(e)
    for rec in sc.logical_lines(files["slurm.conf"], "rendered"):
        if rec.first[0] == "PartitionName":
            orig = next(p for p in o.conf.partitions if p.name == rec.first[1])
            # controllers that are compute nodes stay in their partitions (issue 17)
            want = sorted(o.conf.partition_nodes(orig))
            assert sorted(_scontrol_hostnames(rec.get("Nodes"), minimal)) == want


def test_found_by_the_property_test_a_partition_twice_and_two_defaults():
    """A duplicated PartitionName line (a mutation of the SuperPOD's batch line): the first counts, and of
    several Default=YES the last is the default, as slurmctld reads them; the file still validates."""
    c = sc.parse_slurm_conf(
        "SlurmctldHost=h\nNodeName=n[1-2]\nPartitionName=a Nodes=n1 Default=YES\nPartitionName=a Nodes=n2 Default=YES\n"
        "PartitionName=b Nodes=n2 Default=YES\n"
    )
    a = ad.adopt(c)
    assert a.data["partitions"] == [{"name": "a", "nodes": "n1"}, {"name": "b", "nodes": "n2", "default": True}]
    assert any("slurm.conf:4: PartitionName=a again" in n for n in a.not_kept)
    assert any("slurm.conf:3: PartitionName=a Default=YES: the last partition with Default=YES (b)" in n for n in a.not_kept)
    assert cross_check(parse_cluster(dump_cluster(a.data))) == []


# ----- the CLI functions, on a throwaway command wired as `init` will be -----------------------------------------

import click  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from slurmkit.cli import adopt as cli_adopt  # noqa: E402


@click.command()
@click.option("--ssh-config")
@click.option("--user", default="ubuntu")
@click.option("--identity-file")
@click.option("-o", "--output", default="cluster.yaml")
@click.option("--force", is_flag=True)
@cli_adopt.adopt_options
def _init(ssh_config, user, identity_file, output, force, from_slurm_conf, gres_conf, topology_conf, known_hosts, from_head):
    cli_adopt.run_adopt(from_slurm_conf=from_slurm_conf, gres_conf=gres_conf, topology_conf=topology_conf, from_head=from_head,
                        ssh_config=ssh_config, user=user, identity_file=identity_file, output=output, force=force,
                        known_hosts=known_hosts)


def _invoke(args: list[str]):
    return CliRunner().invoke(_init, args)


def test_cli_from_slurm_conf_reads_gres_conf_beside_it_and_prints_what_was_not_kept(tmp_path: Path):
    out = tmp_path / "cluster.yaml"
    r = _invoke(["--from-slurm-conf", str(CONF / "ocotillo-multi-gpu" / "slurm.conf"), "-o", str(out), "--identity-file", "~/.ssh/id",
                 "--known-hosts", "~/.ssh/known_hosts.ocotillo"])
    assert r.exit_code == 0, r.output
    # several GPU types are kept now (no "not kept" line); ocotillo's other not-kept lines still print
    assert "not kept: " in r.output and "several GPU types" not in r.output and f"wrote {out}: cluster ocotillo" in r.output
    text = out.read_text()
    assert text.startswith("# Adopted by `slurmkit init` from ") and str(CONF / "ocotillo-multi-gpu" / "gres.conf") in text.splitlines()[0]
    c = parse_cluster(text)
    assert c.ssh.user == "ubuntu" and c.ssh.identity_file == "~/.ssh/id" and c.ssh.known_hosts == "~/.ssh/known_hosts.ocotillo"
    assert {g.names: g.gpus.files for g in c.nodes if g.gpus and len(g.gpu_types) == 1}["ibtesla"] == "/dev/nvidia[0-3]"
    assert [(t.type, t.files) for g in c.nodes if g.names == "visualizacion1" for t in g.gpu_types] == [
        ("gtx970", "/dev/nvidia0"), ("gtx1060", "/dev/nvidia1")]
    again = _invoke(["--from-slurm-conf", str(CONF / "ocotillo-multi-gpu" / "slurm.conf"), "-o", str(out)])
    assert again.exit_code != 0 and "already exists" in str(again.exception)


def test_cli_findings_are_printed_and_exit_is_0(tmp_path: Path):
    out = tmp_path / "c.yaml"
    r = _invoke(["--from-slurm-conf", str(CONF / "nvidia-circe-superpod" / "slurm.conf"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "finding: " in r.output and "names node(s) slurm.conf does not define: n[019-020]" in r.output
    assert "# Findings in the originals:" in out.read_text()


def test_cli_nothing_usable_is_our_error_and_nothing_is_written(tmp_path: Path):
    out = tmp_path / "c.yaml"
    # a slurm.conf without a NodeName line (neptrain's one host is adoptable now: head and compute node)
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=h\nPartitionName=p Nodes=ALL\n")
    r = _invoke(["--from-slurm-conf", str(tmp_path / "slurm.conf"), "-o", str(out)])
    assert isinstance(r.exception, sc.SlurmConfError) and r.exception.exit_code == 2 and not out.exists(), r.output
    r = _invoke(["--from-slurm-conf", str(tmp_path / "missing.conf"), "-o", str(out)])
    assert isinstance(r.exception, sc.SlurmConfError) and "missing.conf" in str(r.exception)
    r = _invoke(["--gres-conf", "x", "--from-head", "h", "-o", str(out)])
    assert r.exit_code == 2 and "go with --from-slurm-conf" in r.output


def test_read_remote_finds_slurm_conf_and_reads_includes_through_the_given_functions(tmp_path: Path):
    """read_remote with this machine as the "host": the real FIND_CONF shell command (SLURM_CONF in the
    environment comes first, so scontrol is not asked) and files read from disk."""
    (tmp_path / "nodes.conf").write_text("NodeName=n[1-2] CPUs=4\n")
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=h\ninclude nodes.conf\nPartitionName=p Nodes=ALL\n")
    (tmp_path / "gres.conf").write_text("NodeName=n[1-2] Name=gpu File=/dev/nvidia0\n")
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "slurm.conf")}

    def run(cmd: str) -> str:
        return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=60).stdout

    def read(p: str) -> bytes | None:
        return Path(p).read_bytes() if Path(p).exists() else None

    got = cli_adopt.read_remote(run, read, "localhost")
    assert list(got.conf.nodes) == ["n1", "n2"] and got.gres and got.switches is None
    assert got.sources == [f"localhost:{tmp_path / 'slurm.conf'}", f"localhost:{tmp_path / 'nodes.conf'}", f"localhost:{tmp_path / 'gres.conf'}"]
    (tmp_path / "nodes.conf").unlink()
    with pytest.raises(sc.SlurmConfError, match=r"slurm.conf:2: include 'nodes.conf': No such file on localhost"):
        cli_adopt.read_remote(run, read, "localhost")


# ----- Slurm's own reading of GRES: `slurmd -N NODE -G -f slurm.conf` on the originals and on the rendered files -----


def _slurmd_gres(conf_dir: Path, node: str) -> list[tuple[str, str, str, str]]:
    """Each GPU device as slurmd reads it: (name, type, file, cores). slurmd prints one record per gres.conf
    line (``Gres Name=gpu Type=v100 Count=4 Index=0 ID=.. File=/dev/nvidia[0-3] (null)``); render writes one line
    per device, so records are split into devices (Count spread over File) before comparing."""
    out = subprocess.run(["slurmd", "-N", node, "-G", "-f", str(conf_dir / "slurm.conf")], capture_output=True,
                         text=True, timeout=60)
    records = [ln.split("slurmd: Gres ", 1)[1] for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("slurmd: Gres ")]
    assert records, out.stdout + out.stderr
    devices = []
    for rec in records:
        words = rec.split()
        kv = dict(w.split("=", 1) for w in words if "=" in w)
        files = hostlist.expand(kv["File"])
        assert int(kv["Count"]) == len(files), rec
        devices += [(kv["Name"], kv.get("Type", ""), f, words[-1]) for f in files]
    return sorted(devices)


def _with_devices(text: str, dev: Path) -> str:
    return text.replace("/dev/nvidia", f"{dev}/nvidia")


@pytest.mark.skipif(shutil.which("slurmd") is None or os.geteuid() != 0, reason="needs Slurm's slurmd and root (device nodes)")
def test_slurmd_reads_the_gres_of_every_gpu_node_the_same_after_adoption(tmp_path: Path):
    """Debian's slurmd 22.05 prints each node's GRES (name, type, count, files, cores) from slurm.conf and
    gres.conf; it stats every File=, so both sides' /dev/nvidiaN become placeholder character devices in tmp."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(8):
        os.mknod(dev / f"nvidia{i}", 0o666 | 0o020000, os.makedev(195, i))
    d = "ocotillo-multi-gpu"
    o = originals(d)
    orig, rend = tmp_path / "orig", tmp_path / "rendered"
    orig.mkdir()
    rend.mkdir()
    for name in ("slurm.conf", "gres.conf"):
        (orig / name).write_text(_with_devices((CONF / d / name).read_text(), dev))
    for name, text in render_cluster(parse_cluster(dump_cluster(adopted(o).data))).files.items():
        (rend / name).write_text(_with_devices(text, dev))
    gpu_nodes = [n for n, node in o.conf.nodes.items() if any(g.name == "gpu" for g in node.gres)]
    assert gpu_nodes == ["ibnodo1", "ibnodo2", "visualizacion1", "visualizacion2", "ibtesla"]
    differ = {}
    for n in gpu_nodes:
        a, b = _slurmd_gres(orig, n), _slurmd_gres(rend, n)
        if a != b:
            differ[n] = (a, b)
    # several GPU types are kept: every GPU node, visualizacion1 with gtx970 and gtx1060 included, reads the same
    assert differ == {}
    assert _slurmd_gres(rend, "visualizacion1") == [("gpu", "gtx1060", f"{dev}/nvidia1", "(null)"),
                                                    ("gpu", "gtx970", f"{dev}/nvidia0", "(null)")]
    assert _slurmd_gres(rend, "ibtesla") == [("gpu", "v100", f"{dev}/nvidia{i}", "(null)") for i in range(4)]


def test_settings_render_adds_that_the_original_left_to_slurm_are_listed_unless_slurms_default():
    a = adopted(originals("debian-simple"))
    lines = [n for n in a.not_kept if ": no " in n]
    assert any("no MailProg=: render writes slurmkit's MailProg=/bin/true" in n for n in lines)
    assert not any("AuthType" in n or "SlurmdTimeout" in n for n in lines)  # render writes Slurm's own default
    assert not any("SelectType" in n or "TaskPlugin" in n for n in lines)  # the original sets them: kept verbatim


def test_keep_munge_key_writes_the_heads_key_once_0600_and_never_overwrites(tmp_path: Path):
    from slurmkit.paths import StateDir

    out = tmp_path / "adopted.yaml"
    path = StateDir.of(out).munge_key
    unread = cli_adopt.Read(None, None, None, [], munge_key=None, munge_unread="read /etc/munge/munge.key: Permission denied")
    line = cli_adopt.keep_munge_key(unread, out, "head-1")
    assert line.startswith("munge key: not read from head-1:/etc/munge/munge.key (read /etc/munge/munge.key: Permission denied)")
    assert str(path) in line and not path.exists()
    key = bytes(range(256)) * 4
    line = cli_adopt.keep_munge_key(cli_adopt.Read(None, None, None, [], munge_key=key), out, "head-1")
    assert line == f"munge key: head-1's kept in {path} (0600), so that `bootstrap` keeps it"
    assert path.read_bytes() == key and path.stat().st_mode & 0o777 == 0o600
    assert "already holds head-1's key" in cli_adopt.keep_munge_key(cli_adopt.Read(None, None, None, [], munge_key=key), out, "head-1")
    other = cli_adopt.keep_munge_key(cli_adopt.Read(None, None, None, [], munge_key=b"x" * 1024), out, "head-1")
    assert "holds another key, left as is" in other and path.read_bytes() == key
    short = cli_adopt.keep_munge_key(cli_adopt.Read(None, None, None, [], munge_key=b"x" * 8), tmp_path / "b" / "c.yaml", "h")
    assert "8 bytes, shorter than munged accepts" in short


def test_the_head_read_over_ssh_is_reached_as_it_was():
    d = {"heads": "ctl-a,ctl-b"}
    cli_adopt._reach_head_as_reached(d, "ctl-b", "10.0.0.2")
    assert d["heads"] == {"names": "ctl-a,ctl-b", "addresses": "ctl-a,10.0.0.2"}
    d = {"heads": {"names": "ctl-a,ctl-b", "addresses": "192.168.1.1,192.168.1.2"}}
    cli_adopt._reach_head_as_reached(d, "ctl-a", "login.example.org")
    assert d["heads"] == {"names": "ctl-a,ctl-b", "addresses": "login.example.org,192.168.1.2"}
    for same in ({"heads": "ctl-a"}, ):  # reached by its Slurm name, or a host slurm.conf does not name: unchanged
        cli_adopt._reach_head_as_reached(same, "ctl-a", "ctl-a")
        cli_adopt._reach_head_as_reached(same, "other", "10.0.0.9")
        assert same == {"heads": "ctl-a"}


def test_validate_counts_every_gpu_type_of_the_adopted_ocotillo(tmp_path: Path):
    """validate's summary adds the GPU types of a node (a gpus: list): ibnodo[1-2] 2x4 m2070q, visualizacion1
    gtx970 + gtx1060, visualizacion2 1 rtx2080, ibtesla 4 v100: 8 + 2 + 1 + 4 = 15."""
    from slurmkit.cli import cli as root

    out = tmp_path / "cluster.yaml"
    assert _invoke(["--from-slurm-conf", str(CONF / "ocotillo-multi-gpu" / "slurm.conf"), "-o", str(out)]).exit_code == 0
    v = CliRunner().invoke(root, ["-c", str(out), "validate"])
    assert v.exit_code == 0 and " 15 GPU(s)," in v.output, v.output


def test_validate_and_init_say_a_controller_is_also_a_compute_node(tmp_path: Path):
    """llnl's dev0 and dev1: init prints a note per controller that is a compute node, validate one per group
    (stderr; in --json as notes), and both exit 0."""
    import json

    from slurmkit.cli import cli as root

    out = tmp_path / "cluster.yaml"
    r = _invoke(["--from-slurm-conf", str(CONF / "llnl-dev-default-lines" / "slurm.conf"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "note: " in r.output and "dev0 is a controller and a compute node: kept as both" in r.output
    v = CliRunner().invoke(root, ["-c", str(out), "validate"])
    assert v.exit_code == 0 and "note: nodes[0].names: dev[0-1]: also a head" in v.output, v.output
    j = CliRunner().invoke(root, ["-c", str(out), "validate", "--json"])
    assert j.exit_code == 0, j.output
    summary = json.loads(j.output.splitlines()[0])
    assert summary["valid"] is True and summary["compute_nodes"] == 26 and summary["heads"] == ["dev0", "dev1"]
    assert summary["notes"] == ["nodes[0].names: dev[0-1]: also a head: a controller that is also a compute node "
                                "(SlurmctldHost and NodeName both name it; it runs slurmctld and slurmd)"]


def test_several_gpu_types_without_a_gres_conf_get_consecutive_default_files_and_say_so():
    """ocotillo's slurm.conf alone (its gres.conf not read): each type needs files in the cluster file, so they
    are the next /dev/nvidiaN in Gres= order, one not-kept line per type saying what render writes."""
    o = originals("ocotillo-multi-gpu")
    a = ad.adopt(o.conf, None, None)
    groups = {g["names"]: g for g in a.data["nodes"]}
    assert groups["visualizacion1"]["gpus"] == [{"type": "gtx970", "count": 1, "files": "/dev/nvidia0"},
                                                {"type": "gtx1060", "count": 1, "files": "/dev/nvidia1"}]
    said = [n.split(": ", 1)[1] for n in a.not_kept if "NodeName=visualizacion1 gpu:" in n]
    assert said == ["NodeName=visualizacion1 gpu:gtx970: no gres.conf File= for it: render writes File=/dev/nvidia0",
                    "NodeName=visualizacion1 gpu:gtx1060: no gres.conf File= for it: render writes File=/dev/nvidia1"]
    assert cross_check(parse_cluster(a.text(["x"]))) == []
