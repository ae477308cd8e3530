"""netns._run_many: every host's failure is kept and reported, none hidden behind the first."""

from __future__ import annotations

import sys

import pytest

from slurmkit.errors import CommandError
from slurmkit.local import LocalClusterError, NodeCommandsFailed
from slurmkit.local.netns import _run_many


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_many_returns_every_stdout():
    out = _run_many({"a": (py("print('A')"), None), "b": (py("import sys; print(sys.stdin.read())"), "B")})
    assert out == {"a": "A\n", "b": "B\n"}


def test_run_many_reports_every_failed_host_with_its_own_error():
    jobs = {
        "n1": (py("import sys; sys.stderr.write('n1 broke'); sys.exit(3)"), None),
        "n2": (py("print('fine')"), None),
        "n3": (py("import sys; sys.stderr.write('n3 broke differently'); sys.exit(5)"), None),
    }
    with pytest.raises(NodeCommandsFailed) as info:
        _run_many(jobs, what="starting sshd")
    err = info.value
    assert isinstance(err, LocalClusterError) and err.exit_code == 2
    assert list(err.failures) == ["n1", "n3"]
    assert all(isinstance(e, CommandError) for e in err.failures.values())
    assert (err.failures["n1"].exit_code_, err.failures["n3"].exit_code_) == (3, 5)
    assert err.done == {"n2": "fine\n"}
    text = str(err)
    assert text.startswith("starting sshd failed on 2 host(s): n1, n3")
    assert "n1 broke" in text and "n3 broke differently" in text and "exit code 5" in text
