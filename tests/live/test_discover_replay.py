"""`discover` -> `render` -> `bootstrap` -> `srun` on local nodes that replay a real 8x H100 node's outputs
(tests/live/replay.py: a simulation, tests and demo only), and a replayed truncated output.

Fixture pairing (no single host's captures cover both): ``nvidia-smi topo -m`` of violet-h100-023
(topo-05, 8x H100, 11 NICs mlx5_0..mlx5_8, mlx5_10, mlx5_11) with the ``ibstat`` of another 8x H100 node
(ibstat-04, leptonai/gpud: 8 CX-7 InfiniBand ports Active at 400 - mlx5_0, 1, 4, 5, 6, 7, 8, 9 - and
mlx5_bond_0 Ethernet). No ibstat of violet-h100-023 was published; ibstat-04 is the only capture with 8 active
IB CX-7 ports. The names only partly agree: topo-05 pairs GPU2/GPU3 with mlx5_2/mlx5_3, which ibstat-04 does not
list. The rails and NCCL_IB_HCA follow the topo matrix (read by eye from topo-05's PIX/PXB cells: GPU0..7 ->
mlx5_0, 1, 2, 3, 6, 7, 8, and GPU7 shares mlx5_8, PXB); an HCA the matrix lists but ibstat does not is
unusable (not reported by the InfiniBand tools), so rails 2 and 3 are findings and NCCL is not sent there. ``nvidia-smi --query-gpu`` is not replayed (no fixture holds its fields): the
GPU count comes from the matrix and the type from the cluster file. lscpu/slurmd -C stay real (2 vCPUs), so
topo-05's CPU Affinity (0-55,...) has no core on this machine and gres.conf gets no Cores=.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slurmkit import hostlist
from tests.conftest import HARDWARE
from tests.live.localcluster import local_cluster
from tests.live.replay import replay

pytestmark = pytest.mark.live

TOPO = (HARDWARE / "topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt").read_text()
IBSTAT = (HARDWARE / "ibstat-04-h100-8cx7-plus-bf3-9hca.txt").read_text()
# GPU k -> its PIX HCA in topo-05 (GPU7: none PIX, mlx5_8 is PXB), read from the fixture
RAIL_HCAS = ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_6", "mlx5_7", "mlx5_8", "mlx5_8"]
HW_KEYS = ("sockets", "cores_per_socket", "threads_per_core", "memory_mb")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    with local_cluster(root, computes=2, gpus=8, prefix="scr") as lc:
        lc.replay_root = root / "replayed"
        for n in nodes(lc):
            replay(lc, n, lc.replay_root / n, {"nvidia-smi topo -m": TOPO, "ibstat": IBSTAT})
        yield lc


def nodes(lc) -> list[str]:
    return [f"{lc.name}-node-1", f"{lc.name}-node-2"]


def cache(lc, host: str) -> Path:
    return lc.file.parent / ".slurmkit" / "facts" / f"{host}.json"


def test_replay_is_per_node_and_real_tools_stay(cluster):
    n1 = nodes(cluster)[0]
    assert cluster.on(n1, "nvidia-smi topo -m").stdout == TOPO
    assert cluster.head("command -v nvidia-smi", check=False).returncode != 0  # the head is not replayed
    assert cluster.on(n1, "command -v slurmd lscpu").stdout.split() == ["/usr/sbin/slurmd", "/usr/bin/lscpu"]


def test_discover_reports_replayed_gpus_rails_and_nccl_hcas(cluster):
    report = json.loads(cluster.cli("discover", "--json").stdout)
    for n in nodes(cluster):
        h = report["hosts"][n]
        assert h["ok"], h
        assert [g["index"] for g in h["gpus"]] == list(range(8))
        assert [(r["gpu"], r["hca"]) for r in h["rails"]] == list(enumerate(RAIL_HCAS))
        # mlx5_2 and mlx5_3 are in the PCI matrix but not in this ibstat: their rails stay (as unusable
        # findings) and NCCL is not sent to them.
        usable = [hca for hca in dict.fromkeys(RAIL_HCAS) if hca not in ("mlx5_2", "mlx5_3")]
        assert h["nccl_env"]["NCCL_IB_HCA"] == "=" + ",".join(usable)
        assert [r["usable"] for r in h["rails"]][2:4] == [False, False]
        record = json.loads(cache(cluster, n).read_text())
        assert record["outputs"]["nvidia_smi_topo"] == TOPO and record["outputs"]["ibstat"] == IBSTAT
        assert "no captured output" in record["stderr"]["nvidia_smi_query"]
    env = cluster.cli("discover", "--nccl-env").stdout
    assert "export NCCL_IB_HCA='=mlx5_0,mlx5_1,mlx5_6,mlx5_7,mlx5_8'" in env


def test_render_bootstrap_srun_gpus_per_node(cluster):
    cluster.edit(lambda s: [s["nodes"][0].pop(k) for k in HW_KEYS])  # hardware from the facts
    files = hostlist.expand(cluster.spec["nodes"][0]["gpus"]["files"])
    out = cluster.cli("render", "--stdout").stdout
    gres = [ln for ln in out.splitlines() if ln.startswith("Name=gpu") or " Name=gpu " in ln]
    assert len(gres) == 8 and [re.search(r"File=(\S+)", ln).group(1) for ln in gres] == files
    assert not any("Cores=" in ln for ln in gres)  # topo-05's CPUs 0-55,... are not this VM's
    code, data = cluster.bootstrap()
    assert set(data["node_states"].values()) == {"IDLE"}
    p = cluster.head(f"srun -N2 --gpus-per-node=8 bash -c 'echo $(hostname) $CUDA_VISIBLE_DEVICES'", timeout=120)
    got = sorted(ln.split() for ln in p.stdout.splitlines() if ln.strip())
    assert got == [[n, "0,1,2,3,4,5,6,7"] for n in nodes(cluster)]


def test_truncated_topo_names_host_command_line_others_cached(cluster, tmp_path):
    bad, good = nodes(cluster)
    lines = TOPO.split("\n")
    cut = "\n".join(lines[:6])  # header + GPU0..GPU4, the GPU4 row cut mid-line below
    cut = cut[: cut.rindex("\t", 0, len(cut) - 40)]
    for n in (bad, good):
        cache(cluster, n).unlink(missing_ok=True)
    replay(cluster, bad, tmp_path / bad, {"nvidia-smi topo -m": cut, "ibstat": IBSTAT})
    try:
        p = cluster.cli("discover", check=False)
        pj = cluster.cli("discover", "--json", check=False)
    finally:
        replay(cluster, bad, cluster.replay_root / bad, {"nvidia-smi topo -m": TOPO, "ibstat": IBSTAT})
    assert p.returncode == 1 and pj.returncode == 1
    report = json.loads(pj.stdout)
    assert not report["hosts"][bad]["ok"] and report["hosts"][good]["ok"]
    (finding,) = [f for f in report["findings"] if f["node"] == bad]
    assert finding["message"].startswith(f"{bad}: command `nvidia-smi topo -m`, line 6: row GPU4 has ")
    assert bad in p.stdout and "line 6" in p.stdout
    assert cache(cluster, good).exists() and not cache(cluster, bad).exists()
