"""The support bundle: collect (:mod:`slurmkit.ops.bundle_collect`), scrub (:mod:`slurmkit.ops.scrub`), classify
(:mod:`slurmkit.ops.bundle_rules`) and write one .tar.gz.

Secrets are never collected (the munge key is not read from any host; private keys are not read) and every
collected text is scrubbed before it enters the bundle.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from slurmkit.cluster import Cluster
from slurmkit.errors import SlurmkitError
from slurmkit.ops.bundle_collect import collect_host, collect_slurm
from slurmkit.ops.bundle_rules import Diagnosis, HostEvidence, SlurmEvidence, classify, summary_text
from slurmkit.ops.scrub import scrub
from slurmkit.paths import StateDir


@dataclass
class Bundle:
    """A written support bundle: its path, its findings (most severe first), the hosts that could not be collected
    (name -> why) and the names of the files in it."""

    path: Path
    findings: list[Diagnosis]
    host_errors: dict[str, str]
    members: list[str]

    @property
    def severity(self) -> int | None:
        """The bundle's severity: the most severe finding's (1 is the worst); None when nothing was found."""
        return min((f.severity for f in self.findings), default=None)


def latest_bench(directory: Path) -> tuple[Path, dict] | None:
    """The newest saved bench run (meta.json) under ``directory``, or None."""
    if not directory.is_dir():
        return None
    metas = sorted(directory.glob("**/meta.json"), key=lambda p: p.parent.name)
    if not metas:
        return None
    try:
        return metas[-1], json.loads(metas[-1].read_text())
    except (OSError, ValueError):
        return None


def support_bundle(ssh, cluster_file: Path, output: Path | None = None, bench_dir: Path | None = None,
                   on_done=None) -> Bundle:
    """Collect, scrub, classify and write the support bundle (a .tar.gz). Unreachable hosts become findings."""
    from slurmkit.hardware import hardware_source
    from slurmkit.remote import error_summary
    from slurmkit.render import render_cluster

    cluster: Cluster = ssh.cluster
    cluster_file = Path(cluster_file).expanduser().resolve()
    state = StateDir.of(cluster_file)
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    top = f"slurmkit-support-{cluster.cluster}-{stamp}"
    output = Path(output) if output else Path(f"{top}.tar.gz")
    munge_key = state.munge_key.read_bytes() if state.munge_key.is_file() else None
    members: dict[str, str] = {}

    members["cluster.yaml"] = cluster_file.read_text()
    try:
        rendered = render_cluster(cluster, hardware_source(cluster, cluster_file)).files
    except SlurmkitError as exc:
        rendered = {}
        members["rendered/ERROR.txt"] = str(exc)
    for name, text in rendered.items():
        members[f"rendered/{name}"] = text

    hosts = cluster.hosts()
    roles = {h.name: h.role for h in hosts}
    collected = ssh.run_all(hosts, lambda c: collect_host(c, roles[c.name]), on_done=on_done)
    evidence: dict[str, HostEvidence] = {}
    host_errors: dict[str, str] = {}
    for name, r in collected.results.items():
        if r.ok:
            evidence[name], files = r.value
            for fname, text in files.items():
                members[f"hosts/{name}/{fname}"] = text
        else:
            host_errors[name] = error_summary(r.error)
            evidence[name] = HostEvidence(name, roles[name], error=host_errors[name])
            members[f"hosts/{name}/ERROR.txt"] = host_errors[name] + "\n"
    primary = next(h for h in hosts if h.name == cluster.head_names[0])
    slurm = SlurmEvidence(error="the first head could not be reached")
    if primary.name not in host_errors:
        sr = ssh.run_all([primary], collect_slurm)
        r = sr.results[primary.name]
        if r.ok:
            slurm, files = r.value
            for fname, text in files.items():
                members[f"slurm/{fname}"] = text
        else:
            slurm = SlurmEvidence(error=error_summary(r.error))
            members["slurm/ERROR.txt"] = slurm.error + "\n"
    if state.facts_dir.is_dir():
        for p in sorted(state.facts_dir.glob("*.json")):
            members[f"facts/{p.name}"] = p.read_text()
    bench = latest_bench(Path(bench_dir) if bench_dir else state.bench_dir)
    bench_meta = None
    if bench:
        meta_path, bench_meta = bench
        bench_meta.setdefault("id", meta_path.parent.name)
        members[f"bench/{meta_path.parent.name}/meta.json"] = meta_path.read_text()
    from slurmkit.health.policy import Store, last_results

    health = None
    store = Store(state.health_dir)
    if store.history_file.is_file():
        history = store.history()
        health = last_results(history)
        members["health/history.jsonl"] = "".join(json.dumps(r, sort_keys=True) + "\n" for r in history[-50:])
    findings = classify(cluster, slurm, evidence, rendered, bench_meta, health)
    when = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    summary = {
        "cluster": cluster.cluster, "time": now.isoformat(timespec="seconds"),
        "severity": min((f.severity for f in findings), default=None),
        "findings": [asdict(f) for f in findings], "unreachable": host_errors,
    }
    members["summary.json"] = json.dumps(summary, indent=1) + "\n"
    members["SUMMARY.txt"] = summary_text(cluster.cluster, findings, when)
    scrubbed = {name: scrub(text, munge_key) for name, text in members.items()}
    write_tar(output, top, scrubbed, int(now.timestamp()))
    return Bundle(output, findings, host_errors, sorted(scrubbed))


def write_tar(output: Path, top: str, members: dict[str, str], mtime: int) -> None:
    """``members`` (name -> text) as ``top/name`` in the .tar.gz ``output``, mode 0600; written whole or not at all
    (a temporary file beside it, then renamed)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    os.chmod(tmp, 0o600)
    os.replace(tmp, output)
