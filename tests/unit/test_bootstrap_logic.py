"""Pure parts of bootstrap: what a slurm.conf change needs, the probe, deferred changes, handlers. Which node
states are bootstrap's failures is Slurm's room: tests/unit/test_slurm_state.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurmkit.provision import load_playbooks, parse_probe, probe_script, slurm_conf_action

CONF = "ClusterName=c\nSlurmctldHost=h1\nNodeName=n[1-2] CPUs=2 State=UNKNOWN\nPartitionName=p Nodes=n[1-2] MaxTime=INFINITE\n"


def test_partition_change_is_a_reconfigure():
    assert slurm_conf_action(CONF, CONF.replace("MaxTime=INFINITE", "MaxTime=01:00:00")) == "reconfigure"


@pytest.mark.parametrize("old,new", [
    ("NodeName=n[1-2] CPUs=2", "NodeName=n[1-3] CPUs=2"),      # a node added
    ("SlurmctldHost=h1", "SlurmctldHost=h1\nSlurmctldHost=h2"),  # a backup controller
    ("ClusterName=c", "ClusterName=c\nTopologyPlugin=topology/tree"),
])
def test_node_controller_and_plugin_changes_restart(old, new):
    assert slurm_conf_action(CONF, CONF.replace(old, new)) == "restart"


def test_comment_only_or_no_change_needs_nothing_and_a_new_file_restarts():
    assert slurm_conf_action(CONF, "# header changed\n" + CONF) == "none"
    assert slurm_conf_action(None, CONF) == "restart"


def test_probe_script_covers_every_check_and_parses_back():
    books = load_playbooks(variables={"state_dir": "/shared/state dir"})
    steps = [s for b in books for s in b.steps]
    script, paths = probe_script(steps)
    assert "/etc/slurm/slurm.conf" in paths and "'/shared/state dir'" in script  # quoted, spaces and all
    text = ("@@pkg munge install ok installed\n@@pkg slurm-wlm deinstall ok config-files\n"
            "@@stat root root 644 /etc/slurm/slurm.conf\n@@stat slurm slurm 700 /shared/state dir\n"
            + "ab" * 32 + "  /etc/slurm/slurm.conf\n@@svc munge 1\n@@svc slurmd 0\n")
    probe = parse_probe(text, paths)
    assert probe.installed == {"munge"}
    assert probe.stat["/etc/slurm/slurm.conf"] == ("root", "root", "644") and probe.sha["/etc/slurm/slurm.conf"] == "ab" * 32
    assert probe.stat["/shared/state dir"] == ("slurm", "slurm", "700")  # a name with a space
    assert probe.stat.get("/etc/munge/munge.key") is None  # not reported: missing
    assert probe.running == {"munge": True, "slurmd": False}


class _ScriptConn:
    """Runs the shell a step sends with bash, locally, in a temp dir: the deferral logic is pure shell plumbing."""

    name = "fake-host"

    def run(self, command, check=True, input=None, timeout=None):
        import subprocess

        from slurmkit.remote import Result

        data = input.encode() if isinstance(input, str) else input
        r = subprocess.run(["bash", "-c", command], capture_output=True, input=data)
        return Result(command, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))


def test_deferred_change_that_fails_fails_its_own_step(tmp_path):
    from slurmkit.provision import Context, DeferredFailed, HostReport, Probe, Step, StepResult, run_with_pending

    report = HostReport("fake-host", "compute")
    ctx = Context(Probe(), {}, set(), False, report)
    ok_step, bad_step = Step("t", "ok dir", "directory", {}), Step("t", "bad file", "file", {})
    ctx.defer(f"mkdir -p {tmp_path}/made")
    report.steps.append(StepResult(ok_step, "changed", "created"))
    ctx.defer(f"mv {tmp_path}/no-such-file {tmp_path}/x")
    report.steps.append(StepResult(bad_step, "changed", "updated"))
    with pytest.raises(DeferredFailed):
        run_with_pending(_ScriptConn(), ctx, f"touch {tmp_path}/service-started")
    assert (tmp_path / "made").is_dir()
    assert not (tmp_path / "service-started").exists()  # nothing after the failed change ran
    assert report.steps[0].status == "changed"
    assert report.steps[1].status == "failed" and "no-such-file" in report.steps[1].detail
    assert ctx.pending == []


def test_staged_files_travel_on_the_command_stdin_and_land_with_content_and_mode(tmp_path):
    """Files staged with the deferred changes are one tar stream on that command's stdin, unpacked by the real
    GNU tar where the first was staged: exact bytes (a NUL, invalid UTF-8), each file's mode (a temp file an
    earlier run left world-writable is replaced, not reused), a missing directory made, no temp file left."""
    from slurmkit.provision import Context, HostReport, Probe, Step, StepResult, run_with_pending
    from slurmkit.remote import Upload

    calls = []

    class Counting(_ScriptConn):
        def run(self, command, **kw):
            calls.append(command)
            return super().run(command, **kw)

    secret, conf = tmp_path / "munge" / "munge.key", tmp_path / "slurm.conf"
    stale = tmp_path / "slurm.conf.slurmkit-tmp"
    stale.write_text("left by a crashed run\n")
    stale.chmod(0o666)
    ctx = Context(Probe(), {}, set(), False, HostReport("fake-host", "compute"))
    for i, (path, data, mode) in enumerate([(secret, b"k\x00\xff\x01" * 256, 0o400), (conf, b"NodeName=n1 CPUs=8\n", 0o644)]):
        ctx.stage(Upload(str(path), data, mode))
        ctx.report.steps.append(StepResult(Step("t", f"file {i}", "file", {}), "changed", "updated"))
    run_with_pending(Counting(), ctx)
    assert len(calls) == 1 and ctx.uploads == [] and ctx.pending == []
    assert secret.read_bytes() == b"k\x00\xff\x01" * 256 and secret.stat().st_mode & 0o7777 == 0o400
    assert conf.read_bytes() == b"NodeName=n1 CPUs=8\n" and conf.stat().st_mode & 0o7777 == 0o644
    assert not stale.exists() and not (tmp_path / "munge" / "munge.key.slurmkit-tmp").exists()


def test_a_failed_unpack_fails_the_step_that_staged_the_first_file(tmp_path):
    from slurmkit.provision import Context, DeferredFailed, HostReport, Probe, Step, StepResult, run_with_pending
    from slurmkit.remote import Upload

    (tmp_path / "not-a-dir").write_text("a file where a directory should be\n")
    report = HostReport("fake-host", "compute")
    ctx = Context(Probe(), {}, set(), False, report)
    ctx.defer(f"mkdir {tmp_path}/before")
    report.steps.append(StepResult(Step("t", "dir", "directory", {}), "changed", "created"))
    for i, path in enumerate([tmp_path / "not-a-dir" / "a.conf", tmp_path / "b.conf"]):
        ctx.stage(Upload(str(path), b"x\n"))
        report.steps.append(StepResult(Step("t", f"file {i}", "file", {}), "changed", "updated"))
    with pytest.raises(DeferredFailed):
        run_with_pending(_ScriptConn(), ctx)
    assert [s.status for s in report.steps] == ["changed", "failed", "skipped"]
    assert "not-a-dir" in report.steps[1].detail  # tar's own message names the path
    assert (tmp_path / "before").is_dir() and not (tmp_path / "b.conf").exists()


def test_steps_deferred_after_a_failed_one_are_reported_skipped(tmp_path):
    from slurmkit.provision import Context, DeferredFailed, HostReport, Probe, Step, StepResult, run_with_pending

    report = HostReport("fake-host", "compute")
    ctx = Context(Probe(), {}, set(), False, report)
    for i, cmd in enumerate([f"mv {tmp_path}/no-such-file {tmp_path}/x", f"touch {tmp_path}/later"]):
        ctx.defer(cmd)
        report.steps.append(StepResult(Step("t", f"s{i}", "file", {}), "changed", "updated"))
    with pytest.raises(DeferredFailed):
        run_with_pending(_ScriptConn(), ctx)
    assert [s.status for s in report.steps] == ["failed", "skipped"]
    assert not (tmp_path / "later").exists()


def test_a_service_start_is_deferred_in_a_subshell_whose_exit_ends_only_itself(tmp_path):
    """A service step sends nothing by itself; its start script (which ends with `exit`) is deferred as
    ``( script )``, so the changes deferred after it still run in the same command."""
    from slurmkit.provision import Context, HostReport, Probe, Step, run_step, run_with_pending

    calls = []

    class Counting(_ScriptConn):
        def run(self, command, **kw):
            calls.append(command)
            return super().run(command, **kw)

    ctx = Context(Probe(running={"munge": False}), {}, set(), False, HostReport("fake-host", "compute"))
    res = run_step(Counting(), Step("t", "munged", "service", {"name": "munge"}), ctx)
    assert res.status == "changed" and calls == [] and len(ctx.pending) == 1
    start = ctx.pending[0][1]
    assert start.startswith("( ") and start.endswith("\n)") and "exit" in start
    # The same shape with a start script that exits 0 at once: what follows it still runs.
    ctx.pending = [(0, f"( echo started > {tmp_path}/svc; exit 0\n)", "start svc")]
    ctx.defer(f"touch {tmp_path}/after")
    run_with_pending(Counting(), ctx)
    assert (tmp_path / "svc").read_text() == "started\n" and (tmp_path / "after").exists()


def test_deferred_changes_then_command_in_one_round_trip(tmp_path):
    from slurmkit.provision import Context, HostReport, Probe, run_with_pending

    calls = []

    class Counting(_ScriptConn):
        def run(self, command, **kw):
            calls.append(command)
            return super().run(command, **kw)

    ctx = Context(Probe(), {}, set(), False, HostReport("fake-host", "compute"))
    ctx.defer(f"echo a > {tmp_path}/a")
    ctx.defer(f"echo b > {tmp_path}/b")
    run_with_pending(Counting(), ctx, f"cat {tmp_path}/a {tmp_path}/b > {tmp_path}/ab")
    assert len(calls) == 1 and (tmp_path / "ab").read_text() == "a\nb\n"


def test_probe_script_run_by_bash_reports_real_files(tmp_path):
    import hashlib
    import subprocess

    from slurmkit.provision import Step

    present = tmp_path / "with space.conf"
    present.write_text("x=1\n")
    present.chmod(0o640)
    steps = [Step("t", "f1", "file", {"dest": str(present), "source": "rendered/x"}),
             Step("t", "f2", "file", {"dest": str(tmp_path / "missing.conf"), "source": "rendered/y"}),
             Step("t", "d", "directory", {"path": str(tmp_path)})]
    script, paths = probe_script(steps)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    probe = parse_probe(out, paths)
    owner = subprocess.run(["stat", "-c", "%U %G", str(present)], capture_output=True, text=True).stdout.split()
    assert probe.stat[str(present)] == (owner[0], owner[1], "640")
    assert probe.sha[str(present)] == hashlib.sha256(b"x=1\n").hexdigest()
    assert str(tmp_path / "missing.conf") not in probe.stat and str(tmp_path / "missing.conf") not in probe.sha
    assert probe.stat[str(tmp_path)][2] == format(tmp_path.stat().st_mode & 0o777, "o")


@pytest.mark.skipif(not Path("/var/lib/dpkg/status").exists(), reason="needs dpkg's status database (Debian/Ubuntu)")
def test_packages_script_reads_dpkg_status_as_dpkg_query_does():
    # The probe reads dpkg's status file with awk; on this machine's real database it prints what dpkg-query
    # prints for installed packages, a package dpkg does not know and a name that is a prefix of another's.
    import subprocess

    from slurmkit.provision import packages_script

    names = ["bash", "munge", "slurm-wlm", "no-such-package-slurmkit", "libc6", "lib"]
    ours = subprocess.run(["bash", "-c", packages_script(names)], capture_output=True, text=True).stdout
    query = subprocess.run(["dpkg-query", "-W", "-f=@@pkg ${Package} ${Status}\n", *names],
                           capture_output=True, text=True).stdout
    assert sorted(ours.splitlines()) == sorted(query.splitlines())
    assert "@@pkg bash install ok installed" in ours.splitlines()
    assert "no-such-package" not in ours and "@@pkg lib " not in ours


def test_a_slurmd_start_asks_for_a_controller_only_when_bootstrap_does_not_know_one_answers():
    from slurmkit.provision import CONTROLLER_WAIT, Context, HostReport, Probe, Step, run_step

    def start(known):
        ctx = Context(Probe(running={"slurmd": False}), {}, set(), False, HostReport("n1", "compute"),
                      controller_answers=known)
        assert run_step(_ScriptConn(), Step("t", "slurmd", "service", {"name": "slurmd"}), ctx).status == "changed"
        return ctx.pending[0][1]

    asked = []
    assert CONTROLLER_WAIT not in start(lambda: asked.append(1) or True) and asked == [1]
    assert CONTROLLER_WAIT in start(lambda: False)
    assert CONTROLLER_WAIT in start(None)


def test_primary_watch_knows_the_controller_answers_only_from_the_primarys_own_report():
    from slurmkit.bootstrap import PrimaryWatch
    from slurmkit.provision import HostReport, Step, StepResult

    svc = Step("controller", "slurmctld", "service", {"name": "slurmctld"})

    def report(status, notified=()):
        r = HostReport("h1", "head")
        r.steps.append(StepResult(svc, status, ""))
        r.notified.update(notified)
        return r

    cases = [(report("changed", {"answers:slurmctld"}), True),  # started here, answered its ping
             (report("ok"), True),  # already running before this run
             (report("changed"), False),  # started, never answered
             (report("failed"), False), (None, False)]  # failed, or unreachable
    for rep, want in cases:
        w = PrimaryWatch("h1", in_run=True, timeout=5)
        w.done(rep)
        assert w.answers() is want
    assert PrimaryWatch("h1", in_run=False, timeout=5).answers() is False  # not in this run: unknown at once
    import threading
    import time

    t0 = time.monotonic()
    threading.Event().wait(0.2)  # the same wait, as a same-run baseline of what 0.2 s takes here
    baseline = time.monotonic() - t0
    t0 = time.monotonic()
    assert PrimaryWatch("h1", in_run=True, timeout=0.2).answers() is False  # never done: unknown after the wait
    assert (time.monotonic() - t0) / baseline < 5


def test_munge_key_is_made_whole_once_and_temp_files_of_killed_runs_are_removed(tmp_path):
    from slurmkit.bootstrap import ensure_munge_key
    from slurmkit.errors import SlurmkitError

    cluster_file = tmp_path / "cluster.yaml"
    state = tmp_path / ".slurmkit"
    state.mkdir()
    left = state / "munge.key.tmp-999999999"  # a run killed while writing: that pid is gone
    left.write_bytes(b"partial")
    key = ensure_munge_key(cluster_file)
    assert len(key) == 1024 and (state / "munge.key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in state.iterdir()) == ["munge.key"]
    assert ensure_munge_key(cluster_file) == key  # generated once
    (state / "munge.key").write_bytes(b"short")
    with pytest.raises(SlurmkitError, match=r"munge.key: the munge key has 5 bytes, munged needs at least 32"):
        ensure_munge_key(cluster_file)


def test_a_failed_daemon_start_is_summed_up_by_its_own_error_lines():
    from slurmkit.errors import CommandError
    from slurmkit.provision import daemon_log
    from slurmkit.remote import error_summary

    out = ("@@daemon slurmctld exited\n"
           "[2026-12-02T13:06:21.260] error: Job accounting information gathered, but not stored\n"
           "[2026-12-02T13:06:21.261] slurmctld version 22.05.8 started on cluster bk\n"
           "[2026-12-02T13:06:21.262] error: This host (bk-head-1/bk-head-1) not a valid controller\n")
    err = CommandError("start slurmctld", 1, "", out, host="bk-head-1", extra={"script": "a long script"})
    assert error_summary(err) == ("`start slurmctld` failed (exit 1): slurmctld exited: "
                                  "error: This host (bk-head-1/bk-head-1) not a valid controller")
    munge = ("@@daemon munge exited with exit code 1\n"
             'munged: Error: Keyfile is insecure: "/etc/munge"\n'
             "2026-12-02 13:13:04 +0000 Info:      Seeded PRNG\n"
             '2026-12-02 13:13:04 +0000 Error:     Keyfile is insecure: "/etc/munge"\n')
    assert error_summary(CommandError("start munge", 1, "", munge)) == (
        '`start munge` failed (exit 1): munge exited with exit code 1: Error: Keyfile is insecure: "/etc/munge"')
    assert error_summary(CommandError("x", 2, "", "plain\nlines")) == "`x` failed (exit 2): plain\nlines"
    conf = "SlurmdLogFile=/var/log/slurm/slurmd-%n.log\n"
    assert daemon_log("slurmd", conf, "node-3") == "/var/log/slurm/slurmd-node-3.log"
    assert daemon_log("slurmctld", conf, "head-1") == ""  # not set: Slurm logs to syslog
    assert daemon_log("munge", conf, "node-3") == "/var/log/munge/munged.log"


def test_a_host_getting_its_first_slurm_conf_restarts_nothing_elsewhere():
    """As after a run killed once the heads were done: the computes get their first slurm.conf and start slurmd;
    the controller, whose copy is already right, is not restarted. A daemon that ran without the file is."""
    from types import SimpleNamespace

    from slurmkit.bootstrap import Outcome, _handlers
    from slurmkit.provision import HostReport, Step, StepResult

    conf = "ClusterName=c\nSlurmctldHost=h1\nNodeName=n[1-2] CPUs=2\n"

    def report(host, role, daemon, status, old):
        r = HostReport(host, role)
        r.steps = [StepResult(Step("common", "slurm.conf", "file", {}), "changed" if old != conf else "ok"),
                   StepResult(Step(role, daemon, "service", {"name": daemon}), status)]
        if old != conf:
            r.notified.add("slurm.conf")
            r.old_files["/etc/slurm/slurm.conf"] = old
        return r

    hosts = [SimpleNamespace(name="h1", role="head"), SimpleNamespace(name="n1", role="compute"),
             SimpleNamespace(name="n2", role="compute")]
    cluster = SimpleNamespace(hosts=lambda: hosts, head_names=["h1"])
    out = Outcome(dry_run=True)
    out.reports = {"h1": report("h1", "head", "slurmctld", "ok", conf), "n1": report("n1", "compute", "slurmd", "changed", None),
                   "n2": report("n2", "compute", "slurmd", "ok", None)}
    _handlers(cluster, None, hosts, out, conf, dry_run=True)
    assert out.actions == ["would restart slurmd on n2"]  # n2's slurmd ran without the file; n1's starts with it
    out.actions = []
    out.reports["h1"] = report("h1", "head", "slurmctld", "ok", conf.replace("n[1-2]", "n1"))  # a node added
    _handlers(cluster, None, hosts, out, conf, dry_run=True)
    assert out.actions == ["would restart slurmctld on h1", "would restart slurmd on n2"]


# ---------------------------------------------------------------------------------------------------------
# Verification: what Slurm says once the hosts are done. Slurm's words below are real: the fixtures of
# tests/fixtures/slurm-22.05, and (Slurm 22.05.8, a local cluster of this project, 2026-12-02) scontrol's answers
# with slurmctld killed (exit 1 after 9 s, on stderr) and for a node it does not list (exit 1, on stdout).

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm-22.05"
CTLD_DOWN = "slurm_load_node error: Unable to contact slurm controller (connect failure)\n"


class _FakeSlurm:
    """A runner answering ``scontrol -o show node [NAME]`` from ``answers`` (one per call of the whole list, the
    last repeated), and ``scontrol show node NAME`` for a node it does not list as Slurm does."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []
        self.host = "h1"

    def __call__(self, argv, stdin=None):
        import subprocess

        self.calls.append(list(argv))
        if argv[:4] == ["scontrol", "-o", "show", "node"] and len(argv) == 5:
            return subprocess.CompletedProcess(argv, 1, f"Node {argv[4]} not found\n", "")
        if argv[:2] == ["scontrol", "update"]:
            return subprocess.CompletedProcess(argv, 0, "", "")
        rc, out, err = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return subprocess.CompletedProcess(argv, rc, out, err)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_a_node_the_controller_does_not_list_fails_at_once_with_slurms_words():
    from slurmkit.bootstrap import verify_nodes

    listed = (FIXTURES / "scontrol-o-show-node-alloc.txt").read_text()  # sk-one, MIXED: usable
    runner, clock = _FakeSlurm((0, listed, "")), _Clock()
    v = verify_nodes(runner, ["sk-one", "sk-two"], timeout=60, sleep=clock.sleep, clock=clock)
    assert v.controller_error is None and "sk-one" not in v.problems
    assert v.problems["sk-two"] == ("not in the controller's node list (`scontrol -o show node`): "
                                    "Node sk-two not found")
    assert clock.now == 0  # final: the controller lists every node its slurm.conf names, waiting adds none
    assert runner.calls == [["scontrol", "-o", "show", "node"], ["scontrol", "-o", "show", "node", "sk-two"]]


def test_a_controller_that_never_answers_is_the_primarys_failure_after_the_wait():
    from slurmkit.bootstrap import verify_nodes
    from slurmkit.remote import error_summary

    runner, clock = _FakeSlurm((1, "", CTLD_DOWN)), _Clock()
    v = verify_nodes(runner, ["sk-one"], timeout=5, sleep=clock.sleep, clock=clock)
    assert v.controller_error is not None and v.problems == {} and v.nodes == {}
    assert error_summary(v.controller_error) == ("`scontrol -o show node` failed (exit 1): "
                                                 "slurm_load_node error: Unable to contact slurm controller (connect failure)")
    assert 5 < clock.now < 5.5  # it waited for the controller, as long as told, then gave up


def test_a_controller_that_answers_late_is_waited_for():
    from slurmkit.bootstrap import verify_nodes

    listed = (FIXTURES / "scontrol-o-show-node-alloc.txt").read_text()
    runner, clock = _FakeSlurm((1, "", CTLD_DOWN), (1, "", CTLD_DOWN), (0, listed, "")), _Clock()
    v = verify_nodes(runner, ["sk-one"], timeout=60, sleep=clock.sleep, clock=clock)
    assert v.controller_error is None and v.problems == {} and v.nodes["sk-one"].state == "MIXED"
    assert len(runner.calls) == 3


def test_verify_marks_the_primary_failed_when_no_controller_answers():
    """Through bootstrap's own _verify, over a fake connection: the primary is a failed host with scontrol's words
    (before, a controller that answered nothing, or a node missing from its list, passed)."""
    from types import SimpleNamespace

    from slurmkit.bootstrap import Outcome, _verify
    from slurmkit.remote import GroupResult, HostResult, Result, error_summary

    class Conn:
        name = "h1"

        def run(self, command, check=False, input=None, timeout=None):
            assert command.startswith("SLURM_CONF=/etc/slurm/slurm.conf scontrol -o show node")
            return Result(command, 1, "", CTLD_DOWN)

    class SSH:
        def run_all(self, hosts, fn):
            g = GroupResult()
            for h in hosts:
                g.results[h.name] = HostResult(h.name, value=fn(Conn()))
            return g

    hosts = [SimpleNamespace(name="h1", role="head"), SimpleNamespace(name="n1", role="compute")]
    cluster = SimpleNamespace(hosts=lambda: hosts, head_names=["h1"])
    out = Outcome(dry_run=False)
    _verify(cluster, SSH(), hosts, out, timeout=0)
    assert out.failed_hosts == ["h1"] and out.node_states == {"n1": "missing"} and out.node_failures == {}
    assert "Unable to contact slurm controller" in error_summary(out.errors["h1"])


def test_the_primarys_probe_read_settles_a_run_that_changed_nothing():
    from types import SimpleNamespace

    from slurmkit.bootstrap import Outcome, _verified_by_probe
    from slurmkit.provision import HostReport, Step, StepResult

    alloc = (FIXTURES / "scontrol-o-show-node-alloc.txt").read_text()
    down = (FIXTURES / "scontrol-o-show-node-down.txt").read_text()
    hosts = [SimpleNamespace(name="h1", role="head"), SimpleNamespace(name="sk-one", role="compute")]
    cluster = SimpleNamespace(hosts=lambda: hosts, head_names=["h1"])

    def outcome(also, changed=False):
        out = Outcome(dry_run=False)
        head = HostReport("h1", "head", [StepResult(Step("c", "s", "service", {"name": "slurmctld"}), "ok")])
        head.also = also
        node = HostReport("sk-one", "compute", [StepResult(Step("c", "f", "file", {}), "changed" if changed else "ok")])
        out.reports = {"h1": head, "sk-one": node}
        return out

    out = outcome((0, alloc))
    assert _verified_by_probe(cluster, hosts, out) and out.node_states == {"sk-one": "MIXED"}
    assert not _verified_by_probe(cluster, hosts, outcome((0, alloc), changed=True))  # a change: poll as before
    assert not _verified_by_probe(cluster, hosts, outcome((0, down)))  # a problem: the polling verify judges it
    assert not _verified_by_probe(cluster, hosts, outcome((0, alloc.replace("sk-one", "sk-nine"))))  # missing
    assert not _verified_by_probe(cluster, hosts, outcome((1, "")))  # scontrol failed
    assert not _verified_by_probe(cluster, hosts, outcome(None))  # slurmctld not running: not read


def test_the_probes_extra_read_comes_back_apart_from_the_probe(tmp_path):
    """also_script/split_also run by bash: the read's stdout and exit code, the probe's own lines untouched, a
    false guard (slurmctld not running) runs nothing."""
    import subprocess

    from slurmkit.provision import also_script, split_also

    def run(guard, command):
        script = f"echo '@@svc munge 1'\n{also_script(guard, command)}\necho '@@svc slurmd 0'"
        return split_also(subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout)

    assert run("true", "printf 'NodeName=a\\nNodeName=b'; echo oops >&2") == (
        "@@svc munge 1\n@@svc slurmd 0\n", (0, "NodeName=a\nNodeName=b"))
    assert run("true", "echo partial; exit 3") == ("@@svc munge 1\n@@svc slurmd 0\n", (3, "partial\n"))
    assert run("false", "echo never") == ("@@svc munge 1\n@@svc slurmd 0\n", None)


def test_verify_asks_for_each_compute_by_its_slurm_name_and_answers_by_the_cluster_files():
    """A compute the cluster file calls inv-1 (a fleet placeholder) whose own hostname, its NodeName, is sk-one:
    the probe's read and the polling verify both find it under sk-one and report it as inv-1."""
    from types import SimpleNamespace

    from slurmkit.bootstrap import Outcome, _verified_by_probe, _verify
    from slurmkit.provision import HostReport, Step, StepResult
    from slurmkit.remote import GroupResult, HostResult, Result

    alloc = (FIXTURES / "scontrol-o-show-node-alloc.txt").read_text()
    hosts = [SimpleNamespace(name="h1", role="head"), SimpleNamespace(name="inv-1", role="compute")]
    cluster = SimpleNamespace(hosts=lambda: hosts, head_names=["h1"])
    names = {"h1": "h1", "inv-1": "sk-one"}

    def outcome():
        out = Outcome(dry_run=False)
        head = HostReport("h1", "head", [StepResult(Step("c", "s", "service", {"name": "slurmctld"}), "ok")])
        head.also = (0, alloc)
        out.reports = {"h1": head, "inv-1": HostReport("inv-1", "compute", [])}
        return out

    out = outcome()
    assert _verified_by_probe(cluster, hosts, out, names) and out.node_states == {"inv-1": "MIXED"}
    assert not _verified_by_probe(cluster, hosts, outcome())  # asked as inv-1: Slurm lists no such node

    asked = []

    class Conn:
        name = "h1"

        def run(self, command, check=False, input=None, timeout=None):
            asked.append(command)
            assert "scontrol -o show node" in command and "inv-1" not in command
            return Result(command, 0, alloc, "")

    class SSH:
        def run_all(self, hosts, fn):
            g = GroupResult()
            for h in hosts:
                g.results[h.name] = HostResult(h.name, value=fn(Conn()))
            return g

    out = outcome()
    _verify(cluster, SSH(), hosts, out, timeout=0, names=names)
    assert asked and out.failed_hosts == [] and out.node_states == {"inv-1": "MIXED"} and out.node_failures == {}


# ---------------------------------------------------------------------------------------------------------
# The Slurm release on hosts without cached versions: bootstrap asks only those hosts for the version commands
# (slurmkit.bootstrap.collect_versions) and renders for what they show. Outputs: tests/fixtures/slurm-version/.

_VERSION_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-version"
_CLUSTER = """\
cluster: v
ssh: {user: root}
heads: h1
nodes:
  - names: n[1-2]
    sockets: 1
    cores_per_socket: 2
    threads_per_core: 1
    memory_mb: 1000
"""


def _bare_image_outputs(image: str, version: str) -> dict[str, str]:
    """The three version outputs of a host with no Slurm installed whose apt would install ``version``."""
    return {"slurm_version": "", "slurm_packages": (_VERSION_DIR / f"dpkg-query-W-{image}-none.txt").read_text(),
            "slurm_candidate": (_VERSION_DIR / f"apt-cache-policy-{image}-candidate-{version}.txt").read_text()}


def _installed_outputs(image: str, version: str) -> dict[str, str]:
    return {"slurm_version": (_VERSION_DIR / f"slurm-V-{image}-{version}.txt").read_text(),
            "slurm_packages": (_VERSION_DIR / f"dpkg-query-W-{image}-{version}.txt").read_text(),
            "slurm_candidate": (_VERSION_DIR / f"apt-cache-policy-{image}-installed-{version}.txt").read_text()}


def _versions_cluster(tmp_path):
    from slurmkit.cluster import load_cluster

    path = tmp_path / "cluster.yaml"
    path.write_text(_CLUSTER)
    return load_cluster(path), path


def _record(host: str, outputs: dict[str, str], drop_versions: bool = False) -> dict:
    import json

    from slurmkit.discovery import CommandOutput, facts_record

    rec = json.loads(json.dumps(facts_record(host, {k: "captured" for k in outputs},
                                             {k: CommandOutput(v, "", 0) for k, v in outputs.items()})))
    if drop_versions:  # as records cached before discovery collected versions: no `slurm` in the facts
        del rec["facts"]["slurm"]
    return rec


def test_hosts_without_versions_are_those_with_no_record_or_an_old_one(tmp_path):
    from slurmkit.bootstrap import hosts_without_versions

    cluster, _ = _versions_cluster(tmp_path)
    records = {"n1": _record("n1", _installed_outputs("debian13", "24.11.5")),
               "n2": _record("n2", _installed_outputs("debian13", "24.11.5"), drop_versions=True)}
    assert hosts_without_versions(cluster, records) == ["h1", "n2"]
    assert hosts_without_versions(cluster, {**records, "h1": records["n1"], "n2": records["n1"]}) == []


def test_without_any_cached_facts_the_collected_versions_decide_the_target(tmp_path):
    from slurmkit.bootstrap import hardware_with_versions
    from slurmkit.hardware import cached_records, hardware_source
    from slurmkit.render import render_cluster

    cluster, path = _versions_cluster(tmp_path)
    assert hardware_source(cluster, path, {}).slurm_target.release == "22.05"  # what bootstrap rendered for before
    versions = {h: _bare_image_outputs("debian13", "24.11.5") for h in ("h1", "n1", "n2")}
    source = hardware_with_versions(cluster, path, {}, versions)
    assert (source.slurm_target.release, source.slurm_target.source) == ("24.11", "nodes")
    assert {(hv.host, hv.version, hv.source) for hv in source.slurm_target.hosts} == {
        (h, "24.11.5", "candidate") for h in ("h1", "n1", "n2")}
    rendered = render_cluster(cluster, source)
    assert rendered.target.release == "24.11"
    assert "NodeName=n[1-2] CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000" in rendered.files["slurm.conf"]
    assert cached_records(cluster, path) == {}  # nothing written: discover's records stay its own


def test_a_host_with_an_old_record_gets_the_versions_in_memory_only(tmp_path):
    from slurmkit.bootstrap import hardware_with_versions
    from slurmkit.hardware import read_facts, write_facts

    cluster, path = _versions_cluster(tmp_path)
    old = _record("n1", _installed_outputs("debian13", "24.11.5"), drop_versions=True)
    write_facts(path, "n1", old)
    versions = {h: _installed_outputs("debian13", "24.11.5") for h in ("h1", "n1", "n2")}
    source = hardware_with_versions(cluster, path, {"n1": old}, versions)
    assert source.slurm_target.release == "24.11"
    assert "slurm" not in read_facts(path, "n1")["facts"]


def test_collected_versions_are_checked_as_cached_ones_are(tmp_path):
    # Hosts with no record still count: releases that are no supported upgrade pair are refused, naming them.
    from slurmkit.bootstrap import hardware_with_versions
    from slurmkit.errors import ConfigError

    cluster, path = _versions_cluster(tmp_path)
    versions = {"h1": _installed_outputs("debian12", "22.05.8"), "n1": _installed_outputs("debian13", "24.11.5"),
                "n2": _installed_outputs("debian13", "24.11.5")}
    with pytest.raises(ConfigError) as e:
        hardware_with_versions(cluster, path, {}, versions)
    assert "slurm_version: mixed Slurm versions: h1 runs 22.05.8, n[1-2] run 24.11.5" in str(e.value)


def test_package_installs_run_with_daemon_starts_blocked_by_a_policy_rc_d_of_their_own(tmp_path):
    """Run by a real sh with the policy file in a temp dir: it exists (exit 101) while the install runs, is gone
    after, the install's status is the script's; a site's own policy-rc.d is kept as it is; ours left behind by
    a killed run is taken over and removed."""
    import subprocess

    from slurmkit import provision

    rc_d = tmp_path / "policy-rc.d"
    seen = tmp_path / "seen"
    probe = f"{rc_d} x start; echo $? > {seen}; exit 3"  # the "install": what would a maintainer script get?
    out = subprocess.run(["sh", "-c", provision.without_daemon_starts(probe, str(rc_d))], timeout=60)
    assert out.returncode == 3 and seen.read_text().strip() == "101" and not rc_d.exists()

    rc_d.write_text("#!/bin/sh\nexit 0\n")  # the site's own
    rc_d.chmod(0o755)
    out = subprocess.run(["sh", "-c", provision.without_daemon_starts("true", str(rc_d))], timeout=60)
    assert out.returncode == 0 and rc_d.read_text() == "#!/bin/sh\nexit 0\n"

    rc_d.write_text(f"#!/bin/sh\n{provision.POLICY_MARK}\nexit 101\n")  # ours, from a run killed mid-install
    out = subprocess.run(["sh", "-c", provision.without_daemon_starts("true", str(rc_d))], timeout=60)
    assert out.returncode == 0 and not rc_d.exists()
