"""`slurmkit health` pieces that run without a cluster: the head's token for the shared dir (a real sh), the
history command over kept runs, the options. The checks over SSH are tests/live/test_health_live.py."""

from __future__ import annotations

import json
import subprocess

from click.testing import CliRunner

from slurmkit.cli.health import _head_token, health, health_dir
from slurmkit.health.expected import TOKEN_FILE
from slurmkit.health.policy import Store


def sh_runner(argv, stdin=None):
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)


def test_head_token_written_once(tmp_path):
    token, why = _head_token(sh_runner, str(tmp_path))
    assert why == "" and len(token) == 32 and (tmp_path / TOKEN_FILE).read_text() == token + "\n"
    assert _head_token(sh_runner, str(tmp_path)) == (token, "")  # kept: every node compares the same token
    missing, why = _head_token(sh_runner, str(tmp_path / "nowhere"))
    assert missing is None and "No such file" in why


def test_history_from_kept_runs(tmp_path):
    cfile = tmp_path / "cluster.yaml"
    runner = CliRunner()
    empty = runner.invoke(health, ["history"], obj={"cluster_file": str(cfile)})
    assert empty.exit_code == 0 and "no health run kept yet" in empty.output
    store = Store(health_dir(cfile))
    assert store.root == tmp_path / ".slurmkit" / "health"
    store.append({"time": 0.0, "nodes": {"n1": {"ok": True, "action": "none", "failing": []},
                                         "n2": {"ok": False, "action": "drained",
                                                "failing": [{"id": "gpu-count", "message": "7/8"}]}}})
    out = runner.invoke(health, ["history"], obj={"cluster_file": str(cfile)})
    assert out.exit_code == 0, out.output
    assert "1970-01-01 00:00:00" in out.output and "n2: gpu-count" in out.output and "n2 drained" in out.output
    js = runner.invoke(health, ["history", "--json"], obj={"cluster_file": str(cfile)})
    assert json.loads(js.output)[0]["nodes"]["n2"]["action"] == "drained"


def test_options_refuse_zero():
    r = CliRunner().invoke(health, ["--fail-after", "0"], obj={"cluster_file": "x.yaml"})
    assert r.exit_code == 2 and "--fail-after" in r.output
