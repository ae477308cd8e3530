"""The node check program's pure parsing and checks, over real captured outputs (tests/fixtures/hardware)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slurmkit.facts.ib import parse_ibstat as facts_parse_ibstat
from slurmkit.health import check_node as cn
from slurmkit.health import program_text

HW = Path(__file__).resolve().parents[1] / "fixtures" / "hardware"


def fixture(name: str) -> str:
    return (HW / name).read_text()


IBSTAT_FILES = sorted(p.name for p in HW.glob("ibstat-*.txt"))


@pytest.mark.parametrize("name", IBSTAT_FILES)
def test_ibstat_agrees_with_discovery_parser(name):
    """The node's stdlib parser reads every real ibstat capture as discovery's parser does (CA, port, state,
    rate); a partial output (exit 255) keeps the devices read."""
    mine = cn.parse_ibstat(fixture(name))
    theirs = facts_parse_ibstat(fixture(name))
    assert sorted(mine) == sorted(d.name for d in theirs.devices)
    for dev in theirs.devices:
        assert [(p["port"], p["state"].upper(), p["rate"]) for p in mine[dev.name]] == [
            (p.number, p.state, p.rate_gbps) for p in dev.ports]


def test_ibstat_three_ports_down():
    cas = cn.parse_ibstat(fixture("ibstat-02-h100-12hca-3ports-down-disabled.txt"))
    down = sorted(ca for ca, ports in cas.items() if ports[0]["state"] != "Active")
    assert down == ["mlx5_2", "mlx5_7", "mlx5_8"]
    assert cas["mlx5_0"][0] == {"port": 1, "state": "Active", "phys_state": "LinkUp", "rate": 400.0,
                                "link_layer": "InfiniBand"}


def test_ib_checks_on_real_output():
    text = fixture("ibstat-02-h100-12hca-3ports-down-disabled.txt")
    ok = cn.check_ib([{"hca": "mlx5_0", "rate": 400}, {"hca": "mlx5_3", "rate": 400}], text)
    assert [(c["id"], c["ok"]) for c in ok] == [("ib-port", True), ("ib-rate", True)]
    down = cn.check_ib([{"hca": "mlx5_0", "rate": 400}, {"hca": "mlx5_7", "rate": 40}], text)
    assert down[0] == cn.result("ib-port", False, "mlx5_7 port 1 Down")
    slow = cn.check_ib([{"hca": "mlx5_1", "rate": 400}], text)  # mlx5_1 is Active at 100
    assert [c["ok"] for c in slow] == [True, False] and slow[1]["message"] == "mlx5_1 100<400 Gb/s"
    gone = cn.check_ib([{"hca": "mlx5_99", "rate": 400}], text)
    assert gone[0]["message"] == "mlx5_99 missing" and not gone[0]["ok"]
    assert not cn.check_ib([{"hca": "mlx5_0", "rate": 400}], None)[0]["ok"]
    assert cn.check_ib([], None)[0]["skipped"]


def test_nvsmi_l_mig_lines_are_not_gpus():
    text = fixture("nvsmi-L-01-dgxa100-80gb-mig-head10.txt")
    gpus = cn.parse_nvsmi_l(text)
    assert len(gpus) == text.count("\nGPU ") + text.startswith("GPU ")
    assert gpus[0] == (0, "NVIDIA A100-SXM4-80GB")
    checks = cn.check_gpus({"count": len(gpus), "type": "a100"}, text, {})
    assert [(c["id"], c["ok"]) for c in checks] == [("gpu-count", True), ("gpu-type", True)]
    short = cn.check_gpus({"count": len(gpus) + 1, "type": "h100"}, text, {})
    assert short[0]["message"] == f"{len(gpus)}/{len(gpus) + 1} (nvidia-smi -L)" and not short[0]["ok"]
    assert not short[1]["ok"] and "expected h100" in short[1]["message"]


def test_gpus_from_device_files():
    files = [f"/dev/slurmkit/x/nvidia{k}" for k in range(8)]
    present = {p: p != files[7] for p in files}
    count, kind = cn.check_gpus({"count": 8, "type": "h100", "files": files}, None, present)
    assert count == cn.result("gpu-count", False, "7/8 (missing /dev/slurmkit/x/nvidia7)")
    assert kind["skipped"] and kind["ok"]
    assert cn.check_gpus({"count": 8, "files": files}, None, {p: True for p in files})[0]["ok"]
    none = cn.check_gpus({"count": 8, "files": files}, None, {})[0]
    assert none["message"] == "0/8 (missing /dev/slurmkit/x/nvidia0 and 7 more)"
    assert cn.check_gpus(None, None, {})[0]["skipped"]


def test_mount_memory_spool_munge():
    assert cn.check_mount("/s", "t", {"exists": False})["message"] == "/s missing"
    assert "not mounted" in cn.check_mount("/s", "t", {"exists": True, "is_dir": True, "token": None})["message"]
    assert cn.check_mount("/s", "t", {"exists": True, "is_dir": True, "token": "t"})["ok"]
    mem = cn.parse_meminfo("MemTotal:       16384000 kB\nMemFree:  100 kB\nMemAvailable:    8192000 kB\n")
    assert mem["MemTotal"] == 16384000
    assert cn.check_memory(16000, mem)["ok"] and not cn.check_memory(16001, mem)["ok"]
    assert cn.check_spool("/var/spool/slurmd", 1024, 1023 * 2**20)["ok"] is False
    assert cn.check_spool("/var/spool/slurmd", 1024, None)["message"] == "/var/spool/slurmd missing"
    assert not cn.check_munge(None, "")["ok"]
    assert cn.check_munge(1, "unmunge: Error: Invalid credential\n")["message"].endswith("Invalid credential")


def test_program_runs_as_stdin_of_python3(tmp_path):
    """As slurmkit health runs it on a node: ``python3 - EXPECTED`` with the program on stdin; one JSON out."""
    dev = tmp_path / "nvidia0"
    expected = {"host": "n1", "gpus": {"count": 2, "type": "h100", "files": ["/dev/null", str(dev)]},
                "mounts": [{"path": str(tmp_path), "token_file": "tok", "token": "abc"}], "munge": False,
                "memory_mb": 1, "spool": {"path": str(tmp_path), "min_free_mb": 1}}
    (tmp_path / "tok").write_text("abc\n")
    p = subprocess.run([sys.executable, "-", json.dumps(expected)], input=program_text(), capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    by = {c["id"]: c for c in out["checks"]}
    assert out["host"] == "n1" and out["ok"] is False
    assert by["gpu-count"]["message"] == f"1/2 (missing {dev})"  # /dev/null is a character device
    assert by["mount"]["ok"] and by["memory"]["ok"] and by["spool"]["ok"] and "munge" not in by
    bad = subprocess.run([sys.executable, "-", "[1]"], input=program_text(), capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "bad expected values" in json.loads(bad.stdout)["error"]


OLD_PYTHONS = [p for p in (Path.home() / ".pyenv" / "versions").glob("3.[67].*/bin/python3")]


@pytest.mark.parametrize("python", OLD_PYTHONS or [None], ids=lambda p: p.parts[-3] if p else "none")
def test_program_runs_on_old_python3(python, tmp_path):
    """A node's python3 may be old (the docstring promises 3.7, it also runs on 3.6): same JSON there."""
    if python is None:
        pytest.skip("no python 3.6/3.7 under ~/.pyenv/versions on this machine")
    expected = {"host": "n1", "gpus": {"count": 1, "type": "h100", "files": ["/dev/null"]}, "munge": False,
                "memory_mb": 1, "spool": {"path": str(tmp_path), "min_free_mb": 1}}
    p = subprocess.run([str(python), "-", json.dumps(expected)], input=program_text(), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] is True and [c["id"] for c in out["checks"]] == [
        "gpu-count", "gpu-type", "gpu-ecc", "gpu-xid", "ib-port", "memory", "spool"]
