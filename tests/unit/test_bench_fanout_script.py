"""Pure helpers of benchmarks/bootstrap_fanout.py (the benchmark itself is not a test)."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bootstrap_fanout.py"


@pytest.fixture(scope="module")
def bf():
    spec = importlib.util.spec_from_file_location("bootstrap_fanout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_parse_sizes_sorts_and_dedups(bf):
    assert bf.parse_sizes("64,2,16,2") == [2, 16, 64]
    assert bf.parse_sizes("4") == [4]
    with pytest.raises(ValueError):
        bf.parse_sizes("0,2")
    with pytest.raises(ValueError):
        bf.parse_sizes("")


def test_ratio_and_verdict(bf):
    r, line = bf.ratio_line("T(16)/T(2)", 4.5, 3.0, 1.5)
    assert r == pytest.approx(1.5)
    assert line.endswith("OK") and "1.50" in line and "<= 1.5" in line
    r, line = bf.ratio_line("T(64)/T(2)", 10.0, 2.5, 3.0)
    assert r == pytest.approx(4.0)
    assert line.endswith("MISSED")
    assert bf.ratio_line("x", None, 2.0, 1.0) == (None, bf.ratio_line("x", 1.0, 0.0, 1.0)[1])
    assert bf.verdict(None, 1.0) == "n/a"
    assert bf.verdict(0.05, 0.1) == "OK"
    assert bf.verdict(0.11, 0.1) == "MISSED"


def test_inventory_reaches_every_address_through_the_head(bf):
    inv = bf.ansible_inventory(["10.1.2.11", "10.1.2.12"], "/k/id", "/k/kh", "10.1.1.11")
    assert list(inv["all"]["hosts"]) == ["10.1.2.11", "10.1.2.12"]
    v = inv["all"]["vars"]
    assert v["ansible_user"] == "root"
    assert v["ansible_ssh_private_key_file"] == "/k/id"
    words = shlex.split(v["ansible_ssh_common_args"])
    assert "UserKnownHostsFile=/k/kh" in words
    proxy = next(w for w in words if w.startswith("ProxyCommand="))
    # The proxy command carries the key and known_hosts itself (ssh -J would not) and ends at the head.
    assert shlex.split(proxy.split("=", 1)[1]) == [
        "ssh", "-i", "/k/id", "-o", "UserKnownHostsFile=/k/kh", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-W", "%h:%p", "root@10.1.1.11",
    ]


def test_playbook_has_exactly_the_three_tasks(bf):
    play = bf.ansible_playbook("/tmp/p.txt", "ansible")[0]
    assert play["gather_facts"] is False
    modules = [next(k for k in t if k != "name") for t in play["tasks"]]
    assert modules == ["copy", "command", "lineinfile"]
    assert play["tasks"][0]["copy"]["src"] == "/tmp/p.txt"
    assert play["tasks"][2]["lineinfile"]["line"] == bf.PUSH_LINE


def test_count_idle_counts_only_named_idle_nodes_once(bf):
    # `sinfo -h -N -o '%N %T'` as printed on a 2-node local cluster (bfx1), plus a second partition's line.
    text = "bfx1-node-1 idle\nbfx1-node-2 idle\nbfx1-node-2 idle\nbfx1-node-3 down*\n"
    assert bf.count_idle(text, {"bfx1-node-1", "bfx1-node-2", "bfx1-node-3"}) == 2
    assert bf.count_idle(text, {"bfx1-node-1"}) == 1
    assert bf.count_idle("", {"bfx1-node-1"}) == 0


def test_pss_from_this_process_smaps_rollup(bf):
    text = Path("/proc/self/smaps_rollup").read_text() if Path("/proc/self/smaps_rollup").exists() else None
    if text is None:
        pytest.skip("no /proc/self/smaps_rollup")
    pss, rss = bf.pss_kb(text)
    assert 0 < pss <= rss
