"""The Slurm commands slurmkit runs (slurmkit.slurm.commands): their argv, what each function makes of the answer,
the SLURM_CONF rule and the shell text for node scripts. The runner is a fake that answers with outputs captured
from Slurm 22.05.8 (tests/fixtures/slurm-22.05/SOURCES.md): pure logic, no Slurm here."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from slurmkit.errors import CommandError, SlurmkitError
from slurmkit.remote import Result
from slurmkit.slurm import commands
from tests.conftest import FIXTURES

FIX = FIXTURES / "slurm-22.05"


def read(name: str) -> str:
    return (FIX / name).read_text()


class FakeRunner:
    """Answers each argv from a table (argv tuple -> (returncode, stdout, stderr)) and records what was run."""

    host = "head-1"

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]):
        self.answers = answers
        self.ran: list[tuple[list[str], str | None]] = []

    def __call__(self, argv, stdin=None):
        self.ran.append((list(argv), stdin))
        code, out, err = self.answers[tuple(argv)]
        return subprocess.CompletedProcess(argv, code, out, err)


PING_UP = (0, read("scontrol-ping.txt"), "")
PING_DOWN = (int(read("scontrol-ping-down.rc")), read("scontrol-ping-down.txt"), "")


def test_ping_reads_every_controller_up_or_down():
    r = FakeRunner({("scontrol", "ping"): PING_UP})
    (c,) = commands.ping(r)
    assert (c.role, c.up) == ("primary", True) and r.ran == [(["scontrol", "ping"], None)]
    # scontrol exits 1 when a controller is down: still an answer
    (c,) = commands.ping(FakeRunner({("scontrol", "ping"): PING_DOWN}))
    assert PING_DOWN[0] == 1 and (c.role, c.up) == ("primary", False)


def test_ping_that_names_no_controller_is_an_error_naming_the_command_and_host():
    r = FakeRunner({("scontrol", "ping"): (1, "", "scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error")})
    with pytest.raises(CommandError) as exc:
        commands.ping(r)
    assert (exc.value.command, exc.value.host) == ("scontrol ping", "head-1") and "res_nsearch" in str(exc.value)


def test_show_nodes_and_partitions_parse_the_oneline_form():
    r = FakeRunner({("scontrol", "-o", "show", "node"): (0, read("scontrol-o-show-node-drain.txt"), ""),
                    ("scontrol", "-o", "show", "partition"): (0, read("scontrol-o-show-partition.txt"), "")})
    (n,) = commands.show_nodes(r)
    assert (n.name, n.state_text, n.is_drained) == ("sk-one", "IDLE+DRAIN", True)
    (p,) = commands.show_partitions(r)
    assert (p.name, p.default) == ("debug", True)


def test_show_nodes_failure_raises_with_slurms_words():
    r = FakeRunner({("scontrol", "-o", "show", "node"): (1, "", "slurm_load_node error: Unable to contact slurm controller (connect failure)")})
    with pytest.raises(CommandError, match="Unable to contact slurm controller") as exc:
        commands.show_nodes(r)
    assert exc.value.exit_code_ == 1 and exc.value.command == "scontrol -o show node"


def test_show_config_reads_the_slurm_conf_block_only():
    r = FakeRunner({("scontrol", "show", "config"): (0, read("scontrol-show-config.txt"), "")})
    conf = commands.show_config(r)
    assert (conf["ClusterName"], conf["SlurmctldHost[0]"], conf["SlurmctldTimeout"]) == ("jobslive", "vm", "120 sec")
    assert conf["AccountingStorageBackupHost"] == ""  # (null)
    assert "CgroupPlugin" not in conf and "PMIxDebug" not in conf  # cgroup.conf's and the MPI plugins' sections


def test_reconfigure_runs_on_the_runner_and_raises_on_refusal():
    r = FakeRunner({("scontrol", "reconfigure"): (0, "", "")})  # it prints nothing when it succeeds
    commands.reconfigure(r)
    assert r.ran == [(["scontrol", "reconfigure"], None)]
    bad = FakeRunner({("scontrol", "reconfigure"): (1, "", "slurm_reconfigure error: Unable to contact slurm controller")})
    with pytest.raises(CommandError, match="slurm_reconfigure error") as exc:
        commands.reconfigure(bad)
    assert exc.value.host == "head-1"


def test_resume_says_whether_slurm_took_it():
    argv = ("scontrol", "update", "nodename=sk-one", "state=resume")
    assert commands.resume(FakeRunner({argv: (0, "", "")}), "sk-one") is True
    # resuming a node that is neither down nor drained: Slurm refuses (exit 1)
    refused = (int(read("scontrol-update-resume-idle.rc")), "", read("scontrol-update-resume-idle.stderr"))
    assert refused[0] == 1 and commands.resume(FakeRunner({argv: refused}), "sk-one") is False


def test_drain_and_update_build_one_argv_per_node_set():
    argv = ("scontrol", "update", "nodename=n[1-3]", "state=drain", "reason=ECC errors; see dmesg")
    r = FakeRunner({argv: (0, "", "")})
    commands.drain(r, ["n1", "n2", "n3"], "ECC errors; see dmesg")
    assert r.ran == [(list(argv), None)]
    assert commands.update_node_argv("n[1-2]", "DOWN", "bad psu")[2:] == ["nodename=n[1-2]", "state=down", "reason=bad psu"]


@pytest.mark.parametrize("nodes, state, reason, words", [
    ("n1", "drain", None, "needs a reason"),
    ("n1", "down", "", "needs a reason"),
    ("n1", "sleep", None, "unknown node state 'sleep'; valid: resume, drain"),
    ([], "resume", None, "no node named"),
])
def test_update_refuses_what_slurm_would_refuse_before_running_anything(nodes, state, reason, words):
    with pytest.raises(SlurmkitError, match=words.replace("(", r"\(")):
        commands.update_node_argv(nodes, state, reason)


def test_overview_is_ping_then_the_node_list_and_a_sinfo_failure_raises():
    r = FakeRunner({("scontrol", "ping"): PING_UP, ("sinfo", "-N", "-l"): (0, read("sinfo-N-l.txt"), "")})
    text = commands.overview(r)
    assert text.startswith("Slurmctld(primary) at vm is UP\n") and "NODELIST" in text and "sk-one" in text
    r = FakeRunner({("scontrol", "ping"): PING_DOWN, ("sinfo", "-N", "-l"): (1, "", "slurm_load_node error: Unable to contact slurm controller")})
    with pytest.raises(CommandError, match="sinfo -N -l"):
        commands.overview(r)


def test_version():
    assert commands.version(FakeRunner({("sinfo", "--version"): (0, read("sinfo-version.txt"), "")})) == "slurm-wlm 22.05.8"


def test_submit_argv_is_what_the_dry_run_prints():
    from slurmkit.jobs import build_job

    req = build_job(command=["hostname"], name="a b")
    assert commands.submit_argv(req.sbatch_args) == ["sbatch", "--parsable", "--job-name=a b"]
    assert req.dryrun_text().startswith(f"# submitted as: {shlex.join(commands.submit_argv(req.sbatch_args))} < script\n")


# ---------------------------------------------------------------------------------------------------------
# SLURM_CONF and running over a host's connection


def test_conf_env_and_shell_command_quote_every_item():
    assert commands.conf_env() == "SLURM_CONF=/etc/slurm/slurm.conf"
    assert commands.conf_env("/srv/my slurm/slurm.conf") == "SLURM_CONF='/srv/my slurm/slurm.conf'"
    text = commands.shell_command(commands.update_node_argv("n1", "drain", "it's $(bad)"))
    assert text == "SLURM_CONF=/etc/slurm/slurm.conf scontrol update nodename=n1 state=drain 'reason=it'\"'\"'s $(bad)'"
    assert shlex.split(text)[-1] == "reason=it's $(bad)"


def test_local_conf_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_CONF", "/env/slurm.conf")
    assert commands.local_conf("/given/slurm.conf") == "/given/slurm.conf"
    assert commands.local_conf() == "/env/slurm.conf" == commands.env_conf()
    monkeypatch.delenv("SLURM_CONF")
    assert commands.env_conf() is None
    monkeypatch.setattr(commands, "DEFAULT_CONF", str(tmp_path / "slurm.conf"))
    assert commands.local_conf() is None  # no file: None, never a guess
    (tmp_path / "slurm.conf").write_text("ClusterName=c\n")
    assert commands.local_conf() == str(tmp_path / "slurm.conf")


class FakeConn:
    """A host connection's interface (slurmkit.remote.Conn.run): records the shell text, answers from a table."""

    name = "head-1"

    def __init__(self, answers: dict[str, tuple[int, str, str]]):
        self.answers, self.ran = answers, []

    def run(self, command, check=True, input=None, timeout=None):
        self.ran.append((command, check, input, timeout))
        code, out, err = self.answers[command]
        return Result(command, code, out, err)


def test_conn_runner_runs_each_argv_with_the_hosts_slurm_conf():
    conn = FakeConn({"SLURM_CONF=/etc/slurm/slurm.conf scontrol -o show node":
                     (0, read("scontrol-o-show-node-alloc.txt"), ""),
                     "SLURM_CONF=/etc/slurm/slurm.conf scontrol update nodename=sk-one state=resume":
                     (1, "", read("scontrol-update-resume-idle.stderr"))})
    runner = commands.ConnRunner(conn, timeout=60)
    (n,) = commands.show_nodes(runner)
    assert (n.name, n.state) == ("sk-one", "MIXED") and runner.host == "head-1"
    assert commands.resume(runner, "sk-one") is False
    # never raises by itself (check=False): the command functions judge the exit code
    assert [(check, timeout) for _, check, _, timeout in conn.ran] == [(False, 60), (False, 60)]


def test_controller_answers_shell_is_a_short_quiet_ping_with_the_conf_named():
    assert commands.controller_answers_shell() == "SLURM_CONF=/etc/slurm/slurm.conf timeout 2 scontrol ping >/dev/null 2>&1"
    from slurmkit.provision import CONTROLLER_WAIT

    assert commands.controller_answers_shell() in CONTROLLER_WAIT


def test_find_conf_shell_prints_the_first_existing_path_when_nothing_names_one(tmp_path):
    import subprocess

    from slurmkit.slurm import commands

    missing, present = tmp_path / "a" / "slurm.conf", tmp_path / "b" / "slurm.conf"
    present.parent.mkdir()
    present.write_text("ClusterName=x\n")
    bin_dir = tmp_path / "bin"  # a PATH with no scontrol: the middle step answers nothing
    bin_dir.mkdir()
    for tool in ("sed", "head", "timeout"):
        (bin_dir / tool).symlink_to(subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                                                   text=True, check=True).stdout.strip())
    script = commands.find_conf_shell((str(missing), str(present)))
    env = {"PATH": str(bin_dir)}
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == str(present)
    named = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60,
                           env={**env, "SLURM_CONF": "/srv/slurm.conf"})
    assert named.stdout.strip() == "/srv/slurm.conf"
