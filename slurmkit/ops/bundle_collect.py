"""What the support bundle collects: from each host (daemons, logs, /etc/slurm, dmesg, nvidia-smi, ibstat; never a
key) and from Slurm on the first head (``slurmkit.slurm.commands.BUNDLE_COMMANDS``), as evidence for
:mod:`slurmkit.ops.bundle_rules` and as files for the bundle."""

from __future__ import annotations

import shlex

from slurmkit.ops.bundle_rules import HostEvidence, SlurmEvidence

DAEMONS = {"head": ("slurmctld", "munge"), "compute": ("slurmd", "munge")}
SLURM_CONF_FILES = ("slurm.conf", "gres.conf", "cgroup.conf", "topology.conf")
LOG_LINES = 200


def collect_host(conn, role: str) -> tuple[HostEvidence, dict[str, str]]:
    """One host's evidence and its files for the bundle (name -> text). Never reads a key."""
    from slurmkit.provision import service_running

    ev = HostEvidence(conn.name, role)
    files: dict[str, str] = {}
    for d in DAEMONS[role]:
        ev.daemons["munged" if d == "munge" else d] = service_running(conn, d)
    files["daemons.txt"] = "".join(f"{d}: {'running' if up else 'NOT running'}\n" for d, up in ev.daemons.items())
    logs = conn.run("ls -1 /var/log/slurm/*.log /var/log/munge/munged.log 2>/dev/null", check=False).stdout.split()
    for path in logs:
        files[f"logs/{path.strip('/').replace('/', '_')}"] = conn.run(f"tail -n {LOG_LINES} {shlex.quote(path)}",
                                                                      check=False).stdout
    for name in SLURM_CONF_FILES:
        data = conn.read(f"/etc/slurm/{name}")
        ev.etc_slurm[name] = None if data is None else data.decode("utf-8", "replace")
        if data is not None:
            files[f"etc-slurm/{name}"] = ev.etc_slurm[name]
    files["dmesg-tail.txt"] = conn.run("dmesg -T 2>&1 | tail -n 200", check=False).stdout
    for tool, cmd in (("nvidia-smi", "nvidia-smi -q"), ("ibstat", "ibstat")):
        if conn.run(f"command -v {tool}", check=False).ok:
            r = conn.run(cmd, check=False, timeout=120)
            files[f"{tool}.txt"] = r.stdout + (f"\n[exit {r.exit_code}] {r.stderr}" if not r.ok else "")
            if tool == "ibstat" and r.ok:
                from slurmkit.facts.ib import parse_ibstat

                ports = [(d.name, p) for d in parse_ibstat(r.stdout).devices for p in d.ports
                         if (p.link_layer or "InfiniBand").lower() == "infiniband"]
                ev.ib_active = sum(1 for _, p in ports if p.state == "ACTIVE")
                ev.ib_ports = [f"{d}/{p.number} {p.state}" for d, p in ports]
    return ev, files


def collect_slurm(conn) -> tuple[SlurmEvidence, dict[str, str]]:
    """Slurm's view from ``conn`` (the first head), through :func:`slurmkit.slurm.commands.bundle_outputs`."""
    from slurmkit.slurm import ConnRunner
    from slurmkit.slurm.commands import bundle_outputs

    out = bundle_outputs(ConnRunner(conn, timeout=90))
    ev = SlurmEvidence(ping_text=out.ping_text, controllers=out.controllers)
    if out.nodes is not None:
        ev.nodes = out.nodes
    else:
        ev.error = out.error
    return ev, out.files
