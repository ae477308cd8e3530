"""Bootstrap fan-out: `local up` + `bootstrap` to all nodes idle for 2, 16 and 64 computes, and a 3-task push
through slurmkit's SSH fan-out against `ansible-playbook` on the same 16 local hosts, all in one run.

Targets (issue 3): T(16)/T(2) <= 1.5, T(64)/T(2) <= 3, slurmkit/ansible <= 0.1. Also records each host's
memory (PSS of sshd + slurmd + munged, found by the node's pid files) at the largest size.

    .venv/bin/python benchmarks/bootstrap_fanout.py [--sizes 2,16,64] [--skip-ansible] [--ansible-hosts 16]

Needs root on Linux (the local cluster). Ansible comes from PyPI into its own venv (default
/tmp/sk-ansible-venv), never into the project's. Every cluster it brings up is brought down again, even on
Ctrl-C. Exits 0 whether targets are met or missed: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_16_2 = 1.5
TARGET_64_2 = 3.0
TARGET_SK_ANSIBLE = 0.1
DEFAULT_SIZES = (2, 16, 64)
ANSIBLE_VENV = Path("/tmp/sk-ansible-venv")
IDLE_TIMEOUT_S = 180
PUSH_LINE = "slurmkit_bench=1"
PAYLOAD = ("# pushed by benchmarks/bootstrap_fanout.py\n" + "x" * 63 + "\n") * 64  # 4 KiB


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers


def parse_sizes(text: str) -> list[int]:
    """``"2,16,64"`` -> ``[2, 16, 64]`` (sorted, unique, each >= 1)."""
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--sizes needs positive integers, got {text!r}")
    return sizes


def verdict(value: float | None, target: float) -> str:
    """OK when ``value`` is at most ``target``; MISSED otherwise; n/a when it was not measured."""
    if value is None:
        return "n/a"
    return "OK" if value <= target else "MISSED"


def ratio_line(label: str, num: float | None, den: float | None, target: float) -> tuple[float | None, str]:
    """The ratio num/den and a printable line: ``T(16)/T(2) = 1.23  (target <= 1.5)  OK``."""
    if num is None or den is None or den <= 0:
        return None, f"{label:<22} n/a    (target <= {target:g})  n/a"
    r = num / den
    return r, f"{label:<22} {r:6.2f} (target <= {target:g})  {verdict(r, target)}"


def count_idle(sinfo_nodes: str, names: set[str]) -> int:
    """How many of ``names`` are idle in ``sinfo -h -N -o '%N %T'`` output (a node is counted once)."""
    idle = set()
    for line in sinfo_nodes.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in names and parts[1] == "idle":
            idle.add(parts[0])
    return len(idle)


def ssh_proxy_args(key: str, known_hosts: str, head: str) -> str:
    """``ansible_ssh_common_args`` reaching a compute node through the head (``ssh -J`` drops ``-i``/``-o``)."""
    proxy = f"ssh -i {key} -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o BatchMode=yes -W %h:%p root@{head}"
    return f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o ProxyCommand={shlex.quote(proxy)}"


def ansible_inventory(addresses: list[str], key: str, known_hosts: str, head: str, user: str = "root") -> dict:
    """A YAML-inventory dict: every host by address, reached through ``head`` with the cluster's key."""
    return {
        "all": {
            "hosts": {a: None for a in addresses},
            "vars": {
                "ansible_user": user,
                "ansible_ssh_private_key_file": key,
                "ansible_ssh_common_args": ssh_proxy_args(key, known_hosts, head),
                # Nodes share the machine's /usr: name the interpreter instead of discovering it per host.
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
    }


def ansible_playbook(src: str, tag: str) -> list[dict]:
    """The three tasks both tools run: push a file, run a command, ensure a line."""
    return [
        {
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": "push a file", "copy": {"src": src, "dest": f"/root/sk-bench-{tag}.txt", "mode": "0644"}},
                {"name": "run a command", "command": "hostname"},
                {"name": "ensure a line", "lineinfile": {"path": f"/root/sk-bench-{tag}.conf", "line": PUSH_LINE,
                                                         "create": True, "mode": "0644"}},
            ],
        }
    ]


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    """``PLAY RECAP`` of ansible-playbook: host -> {ok, changed, unreachable, failed, ...}."""
    recap: dict[str, dict[str, int]] = {}
    for line in text.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if m:
            recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return recap


def pss_kb(smaps_rollup: str) -> tuple[int, int]:
    """(Pss, Rss) in kB from ``/proc/PID/smaps_rollup``."""
    pss = re.search(r"^Pss:\s+(\d+) kB", smaps_rollup, re.M)
    rss = re.search(r"^Rss:\s+(\d+) kB", smaps_rollup, re.M)
    return (int(pss.group(1)) if pss else 0, int(rss.group(1)) if rss else 0)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# ---------------------------------------------------------------------------------------------------------------
# Measuring


class CpuMeter:
    """Machine-wide CPU busy share (of all cores) and this process's children CPU seconds over an interval."""

    def __init__(self) -> None:
        self.t0, self.stat0, self.child0 = time.monotonic(), self._stat(), self._children()

    @staticmethod
    def _stat() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    @staticmethod
    def _children() -> float:
        t = os.times()
        return t.children_user + t.children_system

    def stop(self) -> dict:
        busy1, total1 = self._stat()
        busy = (busy1 - self.stat0[0]) / max(1, total1 - self.stat0[1])
        return {"wall": time.monotonic() - self.t0, "machine_busy": busy, "client_cpu": self._children() - self.child0}


def slurmkit(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slurmkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class Local:
    """One local cluster brought up for the benchmark (always brought down in ``finally``)."""

    name: str
    workdir: Path
    computes: int
    spec: dict = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.workdir / "cluster.yaml"

    @property
    def head(self) -> str:
        return self.spec["ssh"]["proxy_jump"].split("@", 1)[1]

    @property
    def key(self) -> str:
        return self.spec["ssh"]["identity_file"]

    @property
    def known_hosts(self) -> str:
        return self.spec["ssh"]["known_hosts"]

    def up(self) -> None:
        import yaml

        p = slurmkit("local", "up", "-n", str(self.computes), "--name", self.name, "-o", str(self.file), cwd=self.workdir)
        if p.returncode != 0:
            raise RuntimeError(f"local up -n {self.computes} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
        self.spec = yaml.safe_load(self.file.read_text())

    def down(self) -> None:
        p = slurmkit("local", "down", "--name", self.name, cwd=self.workdir, timeout=300)
        if p.returncode != 0:
            print(f"  warning: local down --name {self.name} exit {p.returncode}: {p.stderr.strip()[-400:]}")

    def on_head(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-i", self.key, "-o", f"UserKnownHostsFile={self.known_hosts}",
                               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{self.head}", command],
                              capture_output=True, text=True, timeout=timeout)

    def compute_names(self) -> set[str]:
        from slurmkit.cluster import load_cluster

        return set(load_cluster(self.file).compute_names)


def scale_run(n: int, workdir: Path, memory: bool) -> dict:
    """T(n): from `local up -n n` to `sinfo` showing all n nodes idle, by phase."""
    lc = Local(f"bf{secrets.token_hex(2)}", workdir, n)
    out: dict = {"n": n, "name": lc.name}
    t0 = time.monotonic()
    try:
        meter = CpuMeter()
        lc.up()
        out["up"] = meter.stop()
        meter = CpuMeter()
        p = slurmkit("-c", str(lc.file), "bootstrap", "--json", cwd=workdir)
        out["bootstrap"] = meter.stop()
        if memory:
            out["cpu"] = node_cpu(Path(lc.spec["state_dir"]).parent.parent / "nodes")
        try:
            report = json.loads(p.stdout)
            out["bootstrap_self_s"] = report.get("seconds")
            out["bootstrap_failed"] = report.get("failed_hosts")
        except ValueError:
            out["bootstrap_failed"] = [f"no JSON (exit {p.returncode}): {p.stderr.strip()[-300:]}"]
        if p.returncode != 0:
            print(f"  bootstrap exit {p.returncode}; failed hosts: {out.get('bootstrap_failed')}")
        meter = CpuMeter()
        names = lc.compute_names()
        idle, polls = 0, 0
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while True:
            polls += 1
            r = lc.on_head("sinfo -h -N -o '%N %T'")
            idle = count_idle(r.stdout, names)
            if idle == n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out["wait_idle"] = {**meter.stop(), "polls": polls}
        out["idle"] = idle
        out["total"] = time.monotonic() - t0 if idle == n else None
        if memory:
            out["memory"] = node_memory(Path(lc.spec["state_dir"]).parent.parent / "nodes")
    finally:
        meter = CpuMeter()
        lc.down()
        out["down"] = meter.stop()
    return out


def node_memory(nodes_dir: Path) -> dict:
    """Per node: PSS/RSS (kB) of each daemon found through its pid files under nodes/<node>/run."""
    per_node: dict[str, dict[str, tuple[int, int]]] = {}
    for node_dir in sorted(nodes_dir.iterdir()):
        daemons: dict[str, tuple[int, int]] = {}
        for pidfile in sorted((node_dir / "run").rglob("*.pid")):
            try:
                pid = int(pidfile.read_text().split()[0])
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                daemons[comm] = pss_kb(Path(f"/proc/{pid}/smaps_rollup").read_text())
            except (OSError, ValueError, IndexError):
                continue
        per_node[node_dir.name] = daemons
    return per_node


def node_cpu(nodes_dir: Path) -> dict[str, dict[str, float]]:
    """Per node: CPU seconds of each pid-file daemon, itself plus its reaped children (``/proc/PID/stat``).

    sshd's children are the per-connection sessions and the commands they ran, so "sshd" is the whole cost of
    the SSH work done on that host; munged and slurmd daemonize away from it and count as themselves.
    """
    hz = os.sysconf("SC_CLK_TCK")
    per_node: dict[str, dict[str, float]] = {}
    for node_dir in sorted(nodes_dir.iterdir()):
        daemons: dict[str, float] = {}
        for pidfile in sorted((node_dir / "run").rglob("*.pid")):
            try:
                pid = int(pidfile.read_text().split()[0])
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                comm = stat[stat.index("(") + 1:stat.rindex(")")]
                daemons[comm] = sum(int(x) for x in fields[11:15]) / hz  # utime stime cutime cstime
            except (OSError, ValueError, IndexError):
                continue
        per_node[node_dir.name] = daemons
    return per_node


def summarize_cpu(per_node: dict[str, dict[str, float]], client_cpu: float, machine_core_s: float) -> list[str]:
    lines = []
    for label, pat in (("compute", "-node-"), ("head", "-head-")):
        group = {k: v for k, v in per_node.items() if pat in k}
        if not group:
            continue
        daemons = sorted({d for v in group.values() for d in v})
        parts = [f"{d} {sum(v.get(d, 0) for v in group.values()) / len(group):.3f}" for d in daemons]
        total = sum(sum(v.values()) for v in group.values())
        lines.append(f"  {label} hosts ({len(group)}): CPU-s per host: {'; '.join(parts)}; all {label}s {total:.1f} CPU-s")
    hosts = sum(sum(v.values()) for v in per_node.values())
    lines.append(f"  hosts {hosts:.1f} + slurmkit client {client_cpu:.1f} = {hosts + client_cpu:.1f} CPU-s of "
                 f"{machine_core_s:.1f} core-s the machine spent during bootstrap (rest: kernel, other users)")
    return lines


def summarize_memory(per_node: dict[str, dict[str, tuple[int, int]]]) -> list[str]:
    computes = {k: v for k, v in per_node.items() if "-node-" in k}
    heads = {k: v for k, v in per_node.items() if "-head-" in k}
    lines = []
    for label, group in (("compute", computes), ("head", heads)):
        if not group:
            continue
        daemons = sorted({d for v in group.values() for d in v})
        parts = []
        for d in daemons:
            vals = [v[d] for v in group.values() if d in v]
            parts.append(f"{d} {sum(p for p, _ in vals) / len(vals) / 1024:.1f} MiB PSS "
                         f"({sum(r for _, r in vals) / len(vals) / 1024:.1f} RSS)")
        per_host = sum(p for v in group.values() for p, _ in v.values()) / len(group) / 1024
        lines.append(f"  {label} host (mean of {len(group)}): {'; '.join(parts)}; total {per_host:.1f} MiB PSS")
    total = sum(p for v in per_node.values() for p, _ in v.values()) / 1024
    lines.append(f"  whole cluster ({len(per_node)} hosts): {total:.0f} MiB PSS "
                 f"(sshd + munged + slurmd/slurmctld; namespace holders not counted)")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# slurmkit vs ansible-playbook: the same three tasks on the same hosts


def fanout_worker(cluster_file: str, tag: str) -> int:
    """The slurmkit side, run in its own process (so it pays interpreter start and imports, as Ansible does)."""
    from slurmkit.cluster import load_cluster
    from slurmkit.remote import ClusterSSH

    path = Path(cluster_file)
    cluster = load_cluster(path)
    payload = PAYLOAD.encode()
    conf = f"/root/sk-bench-{tag}.conf"

    def three(conn) -> str:
        conn.write(f"/root/sk-bench-{tag}.txt", payload, mode=0o644)
        name = conn.run("hostname").stdout.strip()
        current = conn.read(conf)
        if current is None or PUSH_LINE not in current.decode().splitlines():
            conn.run(f"printf '%s\\n' {shlex.quote(PUSH_LINE)} >> {shlex.quote(conf)}")
        return name

    with ClusterSSH(cluster, path.parent) as ssh:
        group = ssh.run_all([h for h in cluster.hosts() if h.role == "compute"], three)
    bad = {h: repr(r.error) for h, r in group.failed.items()}
    print(json.dumps({"ok": len(group.succeeded), "failed": bad}))
    return 1 if bad else 0


def ensure_ansible(venv: Path) -> Path:
    exe = venv / "bin" / "ansible-playbook"
    if not exe.exists():
        print(f"  installing ansible-core into {venv} (separate venv, from PyPI) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    return exe


def compare_run(n: int, workdir: Path, venv: Path) -> dict:
    import yaml

    from slurmkit.cluster import load_cluster

    exe = ensure_ansible(venv)
    lc = Local(f"ba{secrets.token_hex(2)}", workdir, n)
    out: dict = {"n": n}
    try:
        lc.up()
        addresses = [h.address for h in load_cluster(lc.file).hosts() if h.role == "compute"]
        adir = workdir / "ansible"
        adir.mkdir()
        (adir / "payload.txt").write_text(PAYLOAD)
        (adir / "inventory.yml").write_text(yaml.safe_dump(ansible_inventory(addresses, lc.key, lc.known_hosts, lc.head)))
        (adir / "push.yml").write_text(yaml.safe_dump(ansible_playbook(str(adir / "payload.txt"), "ansible"), sort_keys=False))
        env = {**os.environ, "ANSIBLE_HOME": str(adir / "home"), "ANSIBLE_LOCAL_TEMP": str(adir / "tmp"),
               "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "False"}
        cmd = [str(exe), "-i", str(adir / "inventory.yml"), str(adir / "push.yml")]
        # Warm the page cache and the venv's .pyc files without touching any host.
        subprocess.run([*cmd, "--syntax-check"], env=env, capture_output=True, cwd=adir)
        subprocess.run([sys.executable, __file__, "--fanout-worker", str(lc.file), "warm", "--help"],
                       capture_output=True, cwd=workdir)

        meter = CpuMeter()
        p = subprocess.run([sys.executable, __file__, "--fanout-worker", str(lc.file), "slurmkit"],
                           capture_output=True, text=True, cwd=workdir, timeout=300)
        out["slurmkit"] = meter.stop()
        out["slurmkit_ok"] = p.returncode == 0
        out["slurmkit_out"] = (p.stdout.strip() or p.stderr.strip())[-500:]

        meter = CpuMeter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=adir, timeout=600)
        out["ansible"] = meter.stop()
        recap = parse_recap(p.stdout)
        bad = {h: r for h, r in recap.items() if r.get("failed") or r.get("unreachable")}
        out["ansible_ok"] = p.returncode == 0 and len(recap) == n and not bad
        out["ansible_out"] = "" if out["ansible_ok"] else (p.stdout + p.stderr)[-1500:]
        out["ansible_changed"] = sorted({r.get("changed", 0) for r in recap.values()})
    finally:
        lc.down()
    return out


# ---------------------------------------------------------------------------------------------------------------


def fmt_phases(r: dict) -> str:
    parts = []
    for k in ("up", "bootstrap", "wait_idle"):
        if k in r:
            m = r[k]
            parts.append(f"{k} {m['wall']:.1f}s (client CPU {m['client_cpu']:.1f}s, machine {m['machine_busy']:.0%} busy)")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="compute counts (default 2,16,64)")
    ap.add_argument("--skip-ansible", action="store_true", help="skip the slurmkit-vs-ansible comparison")
    ap.add_argument("--ansible-hosts", type=int, default=16, help="hosts for the comparison (default 16)")
    ap.add_argument("--ansible-venv", type=Path, default=ANSIBLE_VENV)
    ap.add_argument("--fanout-worker", nargs=2, metavar=("CLUSTER_FILE", "TAG"), help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args(argv)
    if args.fanout_worker:
        if "--help" in rest:  # warm-up: imports only
            from slurmkit.remote import ClusterSSH  # noqa: F401
            import fabric  # noqa: F401

            return 0
        return fanout_worker(*args.fanout_worker)
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        print("bootstrap_fanout: needs root on Linux (it brings up local clusters)", file=sys.stderr)
        return 2
    sizes = parse_sizes(args.sizes)
    # Ctrl-C and SIGTERM unwind through the finally blocks that bring clusters down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"bootstrap fan-out benchmark: sizes {sizes}, {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f}")
    results: dict[int, dict] = {}
    compare: dict | None = None
    work = Path(tempfile.mkdtemp(prefix="sk-bench-fanout-"))
    t_all = time.monotonic()
    try:
        # Cold caches (pyc, page cache, first namespace set-up) would inflate the baseline T(smallest) and so
        # flatter every ratio: one unmeasured warm-up run at the smallest size first.
        print(f"\n== warm-up: {sizes[0]} compute(s), not counted", flush=True)
        (work / "warm").mkdir()
        warm = scale_run(sizes[0], work / "warm", memory=False)
        print(f"  warm-up took {warm['total'] or float('nan'):.2f} s")
        for n in sizes:
            wd = work / f"n{n}"
            wd.mkdir()
            print(f"\n== {n} compute(s) + 1 head: local up -> bootstrap -> sinfo idle", flush=True)
            r = scale_run(n, wd, memory=(n == sizes[-1]))
            results[n] = r
            total = f"{r['total']:.2f} s" if r["total"] is not None else f"NOT ALL IDLE ({r['idle']}/{n})"
            print(f"  T({n}) = {total}   [{fmt_phases(r)}; bootstrap's own report {r.get('bootstrap_self_s')} s; "
                  f"down {r['down']['wall']:.1f}s]")
            if r.get("bootstrap_failed"):
                print(f"  bootstrap failed hosts: {r['bootstrap_failed']}")
            if "cpu" in r:
                b = r["bootstrap"]
                print(f"  CPU during bootstrap at N={n} (sshd = its sessions and the commands they ran):")
                print("\n".join(summarize_cpu(r["cpu"], b["client_cpu"], b["machine_busy"] * (os.cpu_count() or 1) * b["wall"])))
            if "memory" in r:
                print(f"  memory at N={n}:")
                print("\n".join(summarize_memory(r["memory"])))
        if not args.skip_ansible:
            wd = work / "ansible"
            wd.mkdir()
            n = args.ansible_hosts
            print(f"\n== copy + command + lineinfile on {n} compute hosts (via the head): slurmkit vs ansible-playbook",
                  flush=True)
            compare = compare_run(n, wd, args.ansible_venv)
            for tool in ("slurmkit", "ansible"):
                m = compare[tool]
                print(f"  {tool:<9} {m['wall']:6.2f} s  (client CPU {m['client_cpu']:.1f}s, machine "
                      f"{m['machine_busy']:.0%} busy)  {'ok' if compare[tool + '_ok'] else 'FAILED'}")
            if not compare["slurmkit_ok"]:
                print(f"  slurmkit side: {compare['slurmkit_out']}")
            if not compare["ansible_ok"]:
                print(f"  ansible side: {compare['ansible_out']}")
            else:
                print(f"  ansible changed per host: {compare['ansible_changed']} (3 = every task changed)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # ----- summary -----
    t = {n: r["total"] for n, r in results.items()}
    base = sizes[0]
    rows, lines = [], []
    print(f"\n== summary (whole run {time.monotonic() - t_all:.0f} s; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for n in sizes:
        print(f"  T({n:>3}) = " + (f"{t[n]:6.2f} s" if t[n] is not None else "   n/a"))
    checks = []
    if 16 in t:
        checks.append((f"T(16)/T({base})", t[16], t[base], TARGET_16_2))
    if 64 in t:
        checks.append((f"T(64)/T({base})", t[64], t[base], TARGET_64_2))
    if compare:
        ok = compare["slurmkit_ok"] and compare["ansible_ok"]
        checks.append((f"slurmkit/ansible ({compare['n']} hosts)", compare["slurmkit"]["wall"] if ok else None,
                       compare["ansible"]["wall"], TARGET_SK_ANSIBLE))
    for label, num, den, target in checks:
        r, line = ratio_line(label, num, den, target)
        lines.append(line)
        rows.append([label, f"{r:.3f}" if r is not None else "n/a", f"<= {target:g}", verdict(r, target)])
    print(table(rows, ["ratio", "value", "target", "verdict"]))
    missed = [row for row in rows if row[3] != "OK"]
    if missed:
        print("\nMissed: " + ", ".join(row[0] for row in missed))
        print(explain(results, compare, sizes))
    return 0


def explain(results: dict[int, dict], compare: dict | None, sizes: list[int]) -> str:
    """Where the time went, from the measured phases: the likely reason a target was missed."""
    out = []
    for n in sizes:
        r = results[n]
        b = r["bootstrap"]
        out.append(f"  N={n:>3}: bootstrap {b['wall']:.1f}s wall, machine CPU {b['machine_busy']:.0%} busy "
                   f"({b['machine_busy'] * (os.cpu_count() or 1) * b['wall']:.1f} core-s), slurmkit client "
                   f"{b['client_cpu']:.1f} CPU-s; up {r['up']['wall']:.1f}s; wait idle {r['wait_idle']['wall']:.1f}s")
    big_n = sizes[-1]
    big = results[big_n]["bootstrap"]
    if big["machine_busy"] > 0.85:
        out.append(f"  The machine was CPU-bound during the largest bootstrap ({big['machine_busy']:.0%} of "
                   f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}: other work shares them too).")
    cpu = results[big_n].get("cpu")
    if cpu:
        computes = [v for k, v in cpu.items() if "-node-" in k]
        sshd = sum(v.get("sshd", 0) for v in computes) / max(1, len(computes))
        out.append(f"  Each compute host's sshd (its sessions and every command they ran) used {sshd:.2f} CPU-s, "
                   f"{sshd * len(computes):.1f} CPU-s for {len(computes)} hosts, and the slurmkit client "
                   f"{big['client_cpu']:.1f} CPU-s (paramiko, one GIL): the per-host cost is the number of SSH "
                   "round trips bootstrap makes per host (one exec channel + shell each; sshd's share includes the "
                   "pre-daemonize start of munged and slurmd, which after it used next to nothing). Fewer, batched "
                   "commands per host would cut both.")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
