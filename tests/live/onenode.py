"""A one-node Slurm cluster on this machine for live job tests: munged, slurmctld and one slurmd (this host, as
`slurmd -C` reports it), configs rendered by slurmkit itself from a cluster file written beside them.

    with one_node_cluster(port_base=16900) as oc:
        oc.env        # environment with SLURM_CONF set (the CLI then runs Slurm commands locally)
        oc.cluster_file

Built on tests/live/harness.py (same pid-file teardown).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.live.harness import Harness, require_live, slurmd_C

NODE = "sk-one"


@dataclass
class OneNode:
    root: Path
    harness: Harness
    conf: Path
    cluster_file: Path
    node: str = NODE

    @property
    def env(self) -> dict:
        return self.harness.env(self.conf)


@contextlib.contextmanager
def one_node_cluster(port_base: int):
    """Start the cluster (skips the test when not root or Slurm is missing); stop exactly what was started."""
    require_live()
    from slurmkit.cluster import load_cluster
    from slurmkit.render import render_cluster

    # munged wants every directory above its socket searchable by all: pytest's tmp_path (0700) is not.
    root = Path(tempfile.mkdtemp(prefix="sk-jobs-", dir="/tmp"))
    root.chmod(0o755)
    h = Harness(root)
    try:
        h.start_munged()
        hw = slurmd_C()
        overrides = h.slurm_overrides(port_base)
        # Jobs must stay visible a while after they end (no slurmdbd, no sacct here): scontrol falls back to them.
        overrides.update({"MinJobAge": 600, "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
                          "MailProg": "/bin/true", "ReturnToService": 2,
                          # Each job takes all memory by default: allow two small jobs at once.
                          "DefMemPerCPU": 500})
        data = {
            "cluster": "jobslive",
            "profile": "local",
            "ssh": {"user": "root"},
            "heads": socket.gethostname(),
            "nodes": [{
                "names": NODE, "addresses": "127.0.0.1",
                "sockets": int(hw["Boards"]) * int(hw["SocketsPerBoard"]),
                "cores_per_socket": int(hw["CoresPerSocket"]), "threads_per_core": int(hw["ThreadsPerCore"]),
                "memory_mb": min(int(hw["RealMemory"]), 4000),
            }],
            "partitions": [{"name": "debug", "default": True}],
            "state_dir": str(root / "state"),
            "slurm_conf": overrides,
        }
        cluster_file = root / "cluster.yaml"
        cluster_file.write_text(yaml.safe_dump(data, sort_keys=False))
        etc = root / "etc"
        render_cluster(load_cluster(cluster_file)).write(etc)
        conf = etc / "slurm.conf"
        h.start_slurmctld(conf)
        h.start_slurmd(conf, NODE)
        h.wait(lambda: "idle" in h.run(conf, "sinfo", "-h", "-n", NODE, "-o", "%T").stdout.lower(), f"{NODE} idle", conf)
        yield OneNode(root, h, conf, cluster_file)
    finally:
        h.stop()
        shutil.rmtree(root, ignore_errors=True)
