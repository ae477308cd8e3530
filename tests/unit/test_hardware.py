"""slurmkit.hardware on real captured outputs (tests/fixtures/hardware, see SOURCES.md): hardware from facts, the
declared-vs-found check (also through hardware_source, and so through bootstrap and render), the NCCL env per
group and for a job, each facts file read once per command, and the module's imports (pure: no SSH library).

Expected values are read off the fixture files by eye; the sums are written out beside them.
"""

from __future__ import annotations

import json

import pytest

from slurmkit.cluster import parse_cluster
from slurmkit.discovery import CommandOutput, facts_record
from slurmkit.errors import SlurmkitError
from slurmkit.facts import parse_nvsmi_list, parse_nvsmi_query
from slurmkit.hardware import check_declared, gpu_type_from_name, hardware_from_facts
from slurmkit.render import render_cluster

from tests.conftest import hardware_fixture as fixture


def record(host: str, **outputs: str) -> dict:
    """A cache record as collect() writes it, from captured outputs, through a JSON round trip."""
    rec = facts_record(host, {k: "captured" for k in outputs}, {k: CommandOutput(v, "", 0) for k, v in outputs.items()},
                       time="2025-01-01T00:00:00+00:00")
    return json.loads(json.dumps(rec))


def violet() -> dict:
    # violet-h100-023: 8x H100; topo -m and numactl -H from its system_info.json, lscpu of the same CPU model
    return record(
        "violet-h100-023",
        nvidia_smi_topo=fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt"),
        numactl=fixture("numactl-H-01-h100-2s-xeon8480-violet-h100-023.txt"),
        lscpu=fixture("lscpu-01-xeon8480plus-2s-h100x8-host.txt"),
    )


def cluster(group: str, profile: str = "real"):
    return parse_cluster(f"""
cluster: t
profile: {profile}
ssh: {{user: root}}
heads: head-1
nodes:
  - names: {group}
""")


def test_violet_hardware_from_facts():
    c = cluster("violet-h100-023\n    gpus: {type: h100, count: 8}")
    hw = hardware_from_facts(violet(), c.nodes[0], "22.05")
    # lscpu: Socket(s) 2, Core(s) per socket 56, Thread(s) per core 2
    assert (hw.sockets, hw.cores_per_socket, hw.threads_per_core, hw.cpus) == (2, 56, 2, 224)
    # numactl: node sizes 1031078 + 1032106 = 2063184 MB, rounded down to whole GiB: 2014 * 1024
    assert hw.memory_mb == 2014 * 1024
    assert hw.gpu_type == "h100" and hw.gpu_count == 8
    assert hw.gpu_files == tuple(f"/dev/nvidia{i}" for i in range(8))
    # topo: GPU0-3 NUMA Affinity 0 (CPUs 0-55,112-167), GPU4-7 NUMA 1 (56-111,168-223); cores exclude HT siblings
    assert hw.gpu_cores == ("0-55",) * 4 + ("56-111",) * 4


def test_violet_renders_gres_cores_matching_gpu_numa_nodes():
    c = cluster("violet-h100-023\n    gpus: {type: h100, count: 8}")
    files = render_cluster(c, lambda name, group: hardware_from_facts(violet(), group, c.slurm_version)).files
    gres = [ln for ln in files["gres.conf"].splitlines() if ln.startswith("NodeName=")]
    assert len(gres) == 8
    numa_of_gpu = [0, 0, 0, 0, 1, 1, 1, 1]  # topo-05 "NUMA Affinity" column
    numa_cpus = {0: set(range(0, 56)) | set(range(112, 168)), 1: set(range(56, 112)) | set(range(168, 224))}
    for i, line in enumerate(gres):
        kv = dict(w.split("=", 1) for w in line.split())
        assert kv["File"] == f"/dev/nvidia{i}" and kv["Type"] == "h100" and kv["NodeName"] == "violet-h100-023"
        lo, hi = map(int, kv["Cores"].split("-"))
        # each core index c of a 112-core node is CPU c (first thread) with sibling CPU c+112
        assert set(range(lo, hi + 1)) | {c + 112 for c in range(lo, hi + 1)} == numa_cpus[numa_of_gpu[i]]
    node = next(ln for ln in files["slurm.conf"].splitlines() if ln.startswith("NodeName="))
    assert "CPUs=224 Sockets=2 CoresPerSocket=56 ThreadsPerCore=2 RealMemory=2062336 Gres=gpu:h100:8" in node


def test_slurmd_c_wins_over_lscpu_and_gives_memory():
    c = cluster("n1")
    # slurmd-C-01: SocketsPerBoard=4 (NUMA as socket) CoresPerSocket=10 ThreadsPerCore=1 RealMemory=385380
    text = "\n".join(ln.strip() for ln in fixture("slurmd-C-01-xeon-2s-snc-numa-as-socket-indented.txt").splitlines())
    hw = hardware_from_facts(record("n1", slurmd=text, lscpu=fixture("lscpu-01-xeon8480plus-2s-h100x8-host.txt")),
                             c.nodes[0], "22.05")
    assert (hw.sockets, hw.cores_per_socket, hw.threads_per_core) == (4, 10, 1)
    assert hw.memory_mb == 376 * 1024  # 385380 MB = 376.3 GiB
    assert hw.gpu_count == 0 and hw.gpu_files == ()
    # slurmd-C-02 (p5.48xlarge): Boards=1 SocketsPerBoard=2 CoresPerSocket=48 ThreadsPerCore=2 RealMemory=2047961
    hw = hardware_from_facts(record("p5", slurmd=fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt")), c.nodes[0], "22.05")
    assert (hw.sockets, hw.cores_per_socket, hw.threads_per_core, hw.memory_mb) == (2, 48, 2, 1999 * 1024)


def test_no_cpu_facts_is_no_hardware():
    c = cluster("n1")
    assert hardware_from_facts(record("n1", nvidia_smi_list=fixture("nvsmi-L-01-dgxa100-80gb-mig-head10.txt")),
                               c.nodes[0], "22.05") is None


def test_gpu_type_from_nvidia_smi_names():
    a100 = parse_nvsmi_list(fixture("nvsmi-L-01-dgxa100-80gb-mig-head10.txt"))
    b300 = parse_nvsmi_query(fixture("nvsmi-query-03-b300-7of8-gpus-visible.txt")).rows
    assert [gpu_type_from_name(g.name) for g in a100] == ["a100", "a100"]  # "NVIDIA A100-SXM4-80GB"
    assert {gpu_type_from_name(r["name"]) for r in b300} == {"b300"}  # "NVIDIA B300 SXM6 AC"
    assert gpu_type_from_name(None) is None


def test_gpu_type_from_name_unless_declared():
    # nvidia-smi -L of a DGX A100 (cut to 2 GPUs by `head`) with the CPU layout of a p5 from slurmd -C:
    # two captures combined to make one node's facts
    rec = record("g1", nvidia_smi_list=fixture("nvsmi-L-01-dgxa100-80gb-mig-head10.txt"),
                 slurmd=fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt"))
    hw = hardware_from_facts(rec, cluster("g1").nodes[0], "22.05")
    assert (hw.gpu_type, hw.gpu_count, hw.gpu_files) == ("a100", 2, ("/dev/nvidia0", "/dev/nvidia1"))
    assert hw.gpu_cores == (None, None)  # no lscpu/numactl: core mapping unknown, Cores= left out
    declared = hardware_from_facts(rec, cluster("g1\n    gpus: {type: a100_80g, count: 2}").nodes[0], "22.05")
    assert declared.gpu_type == "a100_80g" and declared.gpu_count == 2


def test_gpus_without_a_name_need_a_declared_type():
    with pytest.raises(SlurmkitError, match="violet-h100-023: nvidia-smi gave no GPU name"):
        hardware_from_facts(violet(), cluster("violet-h100-023").nodes[0], "22.05")


def test_no_gpu_facts_keeps_declared_gpus():
    c = cluster("p5\n    gpus: {type: h100, count: 8}")
    hw = hardware_from_facts(record("p5", slurmd=fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt")), c.nodes[0], "22.05")
    assert (hw.gpu_type, hw.gpu_count, hw.gpu_cores) == ("h100", 8, (None,) * 8)


def test_check_declared_names_host_key_declared_and_found():
    c = cluster("violet-h100-023\n    gpus: {type: h100, count: 4}\n    sockets: 2\n    cores_per_socket: 52\n"
                "    threads_per_core: 2\n    memory_mb: 2100000")
    problems = check_declared(c, {"violet-h100-023": violet()})
    assert [str(p) for p in problems] == [
        "nodes[0].cores_per_socket: violet-h100-023 has 56, declared 52",
        "nodes[0].memory_mb: violet-h100-023 has 2063184, declared 2100000 "
        "(more than its numactl -H node sizes; declare at most 2062336)",
        "nodes[0].gpus.count: violet-h100-023 has 8, declared 4",
    ]


def test_check_declared_accepts_matching_and_less_memory():
    c = cluster("violet-h100-023\n    gpus: {type: h100, count: 8}\n    sockets: 2\n    cores_per_socket: 56\n"
                "    threads_per_core: 2\n    memory_mb: 2000000")
    assert check_declared(c, {"violet-h100-023": violet()}) == []
    assert check_declared(c, {}) == []  # nothing cached: nothing to contradict


def test_check_declared_gpus_missing_except_simulated_local():
    p5 = record("p5", slurmd=fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt"))
    group = "p5\n    gpus: {type: h100, count: 8}"
    assert [str(p) for p in check_declared(cluster(group), {"p5": p5})] == ["nodes[0].gpus.count: p5 has 0, declared 8"]
    assert check_declared(cluster(group, profile="local"), {"p5": p5}) == []


# ---------------------------------------------------------------- NCCL env per group, and for a job


def cap1(host: str, addr: str) -> dict:
    # local cluster 'cap1' (SOURCES.md, "Captured here"): ip -o -4 addr of the named host, its route to the head
    return record(host, ip_addr=fixture(addr), ip_route_head=fixture("ip-route-get-04-localcluster-node-to-head-eth0.txt"))


NODE1 = "ip-addr-03-localcluster-node-eth0-only.txt"  # eth0 10.167.187.11
NODE2 = "ip-addr-04-localcluster-node2-eth0-only.txt"  # eth0 10.167.187.12
HEAD = "ip-addr-02-localcluster-head-eth0-mgmt-eth1-private.txt"  # eth0 10.167.186.11, eth1 10.167.187.1


def two_groups(second_names: str = "gpu-1", partitions: str = "") -> object:
    return parse_cluster(f"""
cluster: t
ssh: {{user: root}}
heads: {{names: head-1, addresses: 10.167.186.11}}
nodes:
  - {{names: 'cpu-[1-2]', addresses: '10.167.187.[11-12]'}}
  - {{names: '{second_names}', addresses: 10.167.187.1}}
{partitions}""")


def test_group_nccl_socket_ifname_when_all_agree():
    from slurmkit.hardware import group_nccl

    c = two_groups()
    addresses = {h.name: h.address for h in c.hosts()}
    g = group_nccl(["cpu-1", "cpu-2"], {"cpu-1": cap1("cpu-1", NODE1), "cpu-2": cap1("cpu-2", NODE2)}, addresses)
    assert g.mgmt_ifname == "eth0" and g.findings == []
    assert g.env == {"cpu-1": {"NCCL_SOCKET_IFNAME": "=eth0"}, "cpu-2": {"NCCL_SOCKET_IFNAME": "=eth0"}}


def test_group_nccl_names_differ_no_variable_and_a_finding():
    from slurmkit.hardware import group_nccl

    # gpu-1's address 10.167.187.1 is on eth1 in the head's capture; cpu-1's 10.167.187.11 on eth0 in node-1's
    c = two_groups()
    addresses = {h.name: h.address for h in c.hosts()}
    g = group_nccl(["cpu-1", "gpu-1"], {"cpu-1": cap1("cpu-1", NODE1), "gpu-1": cap1("gpu-1", HEAD)}, addresses, "mixed")
    assert g.mgmt_ifname is None and g.env == {"cpu-1": {}, "gpu-1": {}}
    (f,) = g.findings
    assert f.code == "mgmt-ifname-differs" and f.severity == "warning"
    assert "eth0 on cpu-1" in f.message and "eth1 on gpu-1" in f.message and f.message.startswith("mixed: ")


def test_group_nccl_unknown_interface_is_not_guessed():
    from slurmkit.hardware import group_nccl

    g = group_nccl(["violet-h100-023"], {"violet-h100-023": violet()}, {})
    assert g.mgmt_ifname is None and "NCCL_SOCKET_IFNAME" not in g.env["violet-h100-023"]
    assert [f.code for f in g.findings] == ["mgmt-ifname-unknown"]


def test_job_nccl_env_default_partition_one_group():
    from slurmkit.hardware import job_nccl_env

    c = two_groups(partitions="partitions:\n  - {name: cpu, nodes: 'cpu-[1-2]', default: true}\n  - {name: all}\n")
    recs = {"cpu-1": cap1("cpu-1", NODE1), "cpu-2": cap1("cpu-2", NODE2), "gpu-1": cap1("gpu-1", HEAD)}
    job = job_nccl_env(c, recs)
    assert (job.env, job.note, job.partition, job.nodes) == ({"NCCL_SOCKET_IFNAME": "=eth0"}, None, "cpu", ["cpu-1", "cpu-2"])


def test_job_nccl_env_partition_spanning_groups_that_differ():
    from slurmkit.hardware import job_nccl_env

    c = two_groups(partitions="partitions:\n  - {name: cpu, nodes: 'cpu-[1-2]', default: true}\n  - {name: all}\n")
    recs = {"cpu-1": cap1("cpu-1", NODE1), "cpu-2": cap1("cpu-2", NODE2), "gpu-1": cap1("gpu-1", HEAD)}
    job = job_nccl_env(c, recs, "all")
    assert job.env == {} and job.nodes == ["cpu-1", "cpu-2", "gpu-1"]
    assert "\n" not in job.note and "partition all spans nodes with different NCCL envs" in job.note
    assert "cpu-[1-2]: NCCL_SOCKET_IFNAME==eth0" in job.note and "gpu-1: NCCL_SOCKET_IFNAME==eth1" in job.note


def test_job_nccl_env_unknown_cases():
    from slurmkit.hardware import job_nccl_env

    c = two_groups(partitions="partitions:\n  - {name: cpu, nodes: 'cpu-[1-2]'}\n  - {name: all}\n")
    recs = {"cpu-1": cap1("cpu-1", NODE1), "cpu-2": cap1("cpu-2", NODE2)}
    # no facts: nothing, silently
    assert job_nccl_env(c, {}, "cpu").env == {} and job_nccl_env(c, {}, "cpu").note is None
    # no default partition among two: unknown, said so
    assert job_nccl_env(c, recs).note == "NCCL env not exported: the default partition is not in the cluster file"
    assert job_nccl_env(c, recs, "nope").note == "NCCL env not exported: partition nope is not in the cluster file"
    # a group of the partition without any cached facts: nothing exported
    job = job_nccl_env(c, recs, "all")
    assert job.env == {} and "no cached facts for gpu-1" in job.note
    assert job_nccl_env(c, recs, "cpu").env == {"NCCL_SOCKET_IFNAME": "=eth0"}


def test_job_nccl_env_names_the_rail_hcas_and_interface():
    from slurmkit.hardware import job_nccl_env

    c = parse_cluster("""
cluster: t
ssh: {user: root}
heads: head-1
nodes:
  - names: violet-h100-023
    addresses: 10.167.187.11
""")
    rec = record("violet-h100-023", nvidia_smi_topo=fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt"),
                 ip_addr=fixture(NODE1))
    job = job_nccl_env(c, {"violet-h100-023": rec})
    assert job.env == {"NCCL_IB_HCA": "=mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_6,mlx5_7,mlx5_8", "NCCL_SOCKET_IFNAME": "=eth0"}


# ---- declared device files

def test_declared_gpu_files_win_over_dev_nvidia():
    c = cluster("violet-h100-023\n    gpus: {type: h100, count: 8, files: '/dev/slurmkit/x/nvidia[0-7]'}", "local")
    hw = hardware_from_facts(violet(), c.nodes[0], "22.05")
    assert hw.gpu_files == tuple(f"/dev/slurmkit/x/nvidia{i}" for i in range(8))
    assert hw.gpu_cores[0] is not None  # the facts' Cores= stay where the node has those cores


# ---------------------------------------------------------------- the entry point: facts read once, contradictions refused

CONTRADICTED = """\
cluster: t
ssh: {user: root}
heads: head-1
nodes:
  - names: violet-h100-023
    gpus: {type: h100, count: 4}
    sockets: 2
    cores_per_socket: 52
    threads_per_core: 2
    memory_mb: 2100000
"""
# what check_declared says of violet-h100-023's facts (test_check_declared_names_host_key_declared_and_found)
CONTRADICTIONS = [
    "nodes[0].cores_per_socket: violet-h100-023 has 56, declared 52",
    "nodes[0].memory_mb: violet-h100-023 has 2063184, declared 2100000 "
    "(more than its numactl -H node sizes; declare at most 2062336)",
    "nodes[0].gpus.count: violet-h100-023 has 8, declared 4",
]


def cached_cluster(tmp_path, text: str, records: dict) -> "Path":
    """A cluster file in tmp_path with ``records`` (by host) in its facts cache, as `slurmkit discover` leaves it."""
    from slurmkit.hardware import write_facts

    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    for host, rec in records.items():
        write_facts(path, host, rec)
    return path


def test_hardware_source_refuses_declared_hardware_the_facts_contradict(tmp_path):
    from slurmkit import facts_cache
    from slurmkit.cluster import load_cluster
    from slurmkit.errors import ConfigError
    from slurmkit.hardware import hardware_source

    path = cached_cluster(tmp_path, CONTRADICTED, {"violet-h100-023": violet()})
    c = load_cluster(path)
    with pytest.raises(ConfigError) as info:
        hardware_source(c, path)
    assert info.value.source == str(path) and [str(p) for p in info.value.problems] == CONTRADICTIONS
    # the old address (bootstrap, demo, bench and the support bundle import it from there) runs the same check
    with pytest.raises(ConfigError) as old:
        facts_cache.hardware_source(c, path)
    assert str(old.value) == str(info.value)
    # declared as found: no refusal, and the declared hardware is what renders
    path.write_text(CONTRADICTED.replace("count: 4", "count: 8").replace("52", "56").replace("2100000", "2000000"))
    c = load_cluster(path)
    hw = hardware_source(c, path)("violet-h100-023", c.nodes[0])
    assert (hw.cores_per_socket, hw.memory_mb, hw.gpu_count) == (56, 2000000, 8)


def _problem_lines(stderr: str) -> list[str]:
    return [ln.strip() for ln in stderr.splitlines() if ln.strip().startswith("nodes[")]


def test_bootstrap_dry_run_render_and_validate_refuse_the_same_contradictions(tmp_path, cli):
    path = cached_cluster(tmp_path, CONTRADICTED, {"violet-h100-023": violet()})
    results = {cmd: cli(*cmd.split(), cwd=tmp_path) for cmd in ("validate", "render -o out", "bootstrap --dry-run")}
    for cmd, r in results.items():
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert _problem_lines(r.stderr) == CONTRADICTIONS, (cmd, r.stderr)
        assert str(path.name) in r.stderr, (cmd, r.stderr)
    assert not (tmp_path / "out").exists()
    # bootstrap refused before touching a host: no connection tried (head-1 does not resolve: it would be
    # "[1/2] head-1: failed" on stderr and a table naming it on stdout)
    assert "head-1" not in results["bootstrap --dry-run"].stderr and results["bootstrap --dry-run"].stdout == ""


def test_each_facts_file_is_read_once_per_command(tmp_path, monkeypatch):
    from collections import Counter
    from pathlib import Path

    from click.testing import CliRunner

    from slurmkit.cli import cli as main
    from slurmkit.hardware import facts_dir

    other = violet()
    other["facts"]["hostname"] = other["host"] = "violet-h100-024"
    text = CONTRADICTED.split("    gpus:")[0].replace("violet-h100-023", "violet-h100-[023-024]")
    path = cached_cluster(tmp_path, text + "    gpus: {type: h100, count: 8}\n",
                          {"violet-h100-023": violet(), "violet-h100-024": other})
    cache = facts_dir(path)
    reads: Counter = Counter()
    read_text = Path.read_text

    def counting(self, *args, **kwargs):
        if self.parent == cache:
            reads[self.name] += 1
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    for command in (["render", "--stdout"], ["validate"]):
        reads.clear()
        r = CliRunner().invoke(main, ["-c", str(path), *command])
        assert r.exit_code == 0, r.output
        # every host's file (the head's too: its Slurm version counts) once, though it has none here
        assert reads == {"violet-h100-023.json": 1, "violet-h100-024.json": 1, "head-1.json": 1}, command
    assert "NodeName=violet-h100-[023-024] CPUs=224" in CliRunner().invoke(main, ["-c", str(path), "render", "--stdout"]).output


def test_a_garbled_facts_file_is_an_error_naming_it(tmp_path):
    from slurmkit.cluster import load_cluster
    from slurmkit.errors import ConfigError
    from slurmkit.hardware import facts_dir, hardware_source

    path = cached_cluster(tmp_path, CONTRADICTED, {"violet-h100-023": violet()})
    broken = facts_dir(path) / "violet-h100-023.json"
    broken.write_text(broken.read_text()[:100])  # cut short, as by a full disk
    with pytest.raises(ConfigError) as info:
        hardware_source(load_cluster(path), path)
    assert info.value.source == str(broken)
    assert "not a facts record (not JSON:" in str(info.value) and "slurmkit discover --limit violet-h100-023" in str(info.value)
    broken.write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        hardware_source(load_cluster(path), path)


# ---------------------------------------------------------------- imports: no circle, no SSH library

ROOM = ("slurmkit.hardware", "slurmkit.facts_cache", "slurmkit.discovery", "slurmkit.render", "slurmkit.topology",
        "slurmkit.resources")
SSH_LIBRARIES = ("paramiko", "fabric", "invoke")


def _module_file(name: str) -> str | None:
    """The source file of slurmkit module ``name``; None for a name that is no slurmkit module."""
    import importlib.util

    if name.split(".")[0] != "slurmkit":
        return None
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    return spec.origin if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _imports(name: str) -> set[str]:
    """Every module ``name`` imports, at its top or inside a function (an import done later is an import too)."""
    import ast

    tree = ast.parse(open(_module_file(name)).read())
    package = name if _module_file(name).endswith("__init__.py") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if _module_file(sub) else base)
    return out


def _reachable(name: str) -> set[str]:
    seen, todo = set(), [m for m in _imports(name) if m.startswith("slurmkit")]
    while todo:
        m = todo.pop()
        if m in seen or _module_file(m) is None:
            continue
        seen.add(m)
        todo += [i for i in _imports(m) if i.startswith("slurmkit")]
    return seen


@pytest.mark.parametrize("module", ROOM)
def test_no_import_circle(module):
    assert module not in _reachable(module), f"{module} imports itself back (through a function-level import too)"
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr  # alone, in a fresh interpreter


def test_hardware_imports_no_ssh_library():
    import subprocess
    import sys

    code = f"import sys, slurmkit.hardware; print(sorted(m for m in sys.modules if m.split('.')[0] in {SSH_LIBRARIES!r}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    # nor later: no module it can reach, even through an import inside a function, imports one
    for m in _reachable("slurmkit.hardware") | {"slurmkit.hardware"}:
        assert not {i.split(".")[0] for i in _imports(m)} & set(SSH_LIBRARIES), m
    assert "slurmkit.remote" not in _reachable("slurmkit.hardware")
    assert "slurmkit.remote" in _reachable("slurmkit.discovery")  # the check would see one: discovery uses SSH


# ---------------------------------------------------------------- several declared GPU types (a gpus: list)

VIOLET_TWO_TYPES = ("violet-h100-023\n    gpus:\n      - {type: h100a, count: 4, files: '/dev/nvidia[0-3]'}\n"
                    "      - {type: h100b, count: 4, files: '/dev/nvidia[4-7]'}")


def test_a_declared_list_takes_the_facts_gpus_in_index_order_with_their_cores():
    # violet's 8 real H100s declared as two types of 4 (a split the cluster file chooses): GPUs 0-3 the first
    # type, 4-7 the second, each with its NUMA-local cores from topo -m (as in test_violet_hardware_from_facts)
    c = cluster(VIOLET_TWO_TYPES)
    hw = hardware_from_facts(violet(), c.nodes[0], "22.05")
    assert [(g.type, g.count, g.files, g.cores) for g in hw.gpu_sets] == [
        ("h100a", 4, tuple(f"/dev/nvidia{i}" for i in range(4)), ("0-55",) * 4),
        ("h100b", 4, tuple(f"/dev/nvidia{i}" for i in range(4, 8)), ("56-111",) * 4),
    ]
    assert hw.gpu_total == 8 and hw.gpu_type == "h100a" and hw.gpu_count == 4  # the first type in the old fields
    files = render_cluster(c, lambda name, group: hardware_from_facts(violet(), group, c.slurm_version)).files
    assert "Gres=gpu:h100a:4,gpu:h100b:4" in files["slurm.conf"]
    gres = [ln for ln in files["gres.conf"].splitlines() if ln.startswith("NodeName=")]
    assert gres[0] == "NodeName=violet-h100-023 Name=gpu Type=h100a File=/dev/nvidia0 Cores=0-55"
    assert gres[7] == "NodeName=violet-h100-023 Name=gpu Type=h100b File=/dev/nvidia7 Cores=56-111"


def test_a_declared_list_whose_total_the_facts_contradict_is_refused_with_both_counts():
    c = cluster("violet-h100-023\n    gpus:\n      - {type: gtx970, count: 1, files: /dev/nvidia0}\n"
                "      - {type: gtx1060, count: 1, files: /dev/nvidia1}")
    assert [str(p) for p in check_declared(c, {"violet-h100-023": violet()})] == [
        "nodes[0].gpus: violet-h100-023 has 8, declared 2 (gtx970:1, gtx1060:1)"]
    with pytest.raises(SlurmkitError, match=r"violet-h100-023: has 8 GPU\(s\), its node group declares 2 \(gtx970:1, gtx1060:1\)"):
        hardware_from_facts(violet(), c.nodes[0], "22.05")
    assert check_declared(cluster(VIOLET_TWO_TYPES), {"violet-h100-023": violet()}) == []


def test_a_declared_list_without_gpu_facts_is_used_as_given():
    c = cluster("p5\n    gpus:\n      - {type: a, count: 1, files: /dev/nvidia0}\n      - {type: b, count: 1, files: /dev/nvidia1}")
    hw = hardware_from_facts(record("p5", slurmd=fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt")), c.nodes[0], "22.05")
    assert [(g.type, g.files, g.cores) for g in hw.gpu_sets] == [("a", ("/dev/nvidia0",), (None,)), ("b", ("/dev/nvidia1",), (None,))]
