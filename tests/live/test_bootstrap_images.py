"""Bootstrap on nodes that are machines (`local up --image debian-13`): the base image holds no Slurm and no
munge, so bootstrap's package step installs them with apt from the cluster's site mirror (the image's package
repository, served by the head: the nodes have no route out), then starts them as systemd units."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

if os.geteuid() != 0:
    pytest.skip("needs root (namespaces, overlay mounts, systemd-nspawn, debootstrap)", allow_module_level=True)

from slurmkit.local import cluster as lc  # noqa: E402
from tests.live.test_local_images import ImageCluster, _leftovers, slurmkit  # noqa: E402


def _bootstrap(c: ImageCluster) -> dict:
    out = slurmkit("-c", str(c.file), "bootstrap", "--json", cwd=c.cwd, timeout=1800).stdout
    return json.loads(out)


# image -> the Slurm series its archive (and so the site mirror) installs
IMAGE_SLURM = {"debian-13": "24.11", "debian-sid": "26.05", "debian-12": "22.05"}


@pytest.fixture(scope="module", params=list(IMAGE_SLURM))
def cluster(request, tmp_path_factory):
    image = request.param
    cwd = tmp_path_factory.mktemp("bootimages")
    name = "sd" + secrets.token_hex(3)
    # On a fresh machine this builds the image and its repository first (debootstrap: about a minute).
    slurmkit("local", "up", "--image", image, "-n", "2", "--heads", "1", "--name", name, cwd=cwd, timeout=1200)
    state = lc.State.load(name)
    try:
        c = ImageCluster(name, cwd)
        c.image, c.series = image, IMAGE_SLURM[image]
        slurmkit("-c", str(c.file), "discover", cwd=cwd, timeout=600)
        c.first = _bootstrap(c)
        # SLURMKIT_CAPTURE_DIR=DIR: save this cluster's real Slurm outputs into DIR/slurm-SERIES (the fixtures)
        if os.environ.get("SLURMKIT_CAPTURE_DIR") and not c.first["failed_hosts"]:
            from tests.live.capture_outputs import capture
            capture(c, Path(os.environ["SLURMKIT_CAPTURE_DIR"]) / f"slurm-{c.series}")
        yield c
    finally:
        slurmkit("local", "down", "--name", name, cwd=cwd)
    assert _leftovers(name, state.plan) == []


def _steps(report: dict, host: str) -> dict[str, str]:
    return {s["step"]: s["status"] for s in report["hosts"][host]["steps"]}


def test_first_bootstrap_installs_slurm_from_the_site_mirror(cluster):
    report = cluster.first
    assert report["failed_hosts"] == [], json.dumps(report)[:4000]
    for node in cluster.plan.nodes:
        steps = _steps(report, node.name)
        assert steps["Slurm and munge packages"] == "changed", steps  # the image has none: installed now
        daemon = "slurmctld" if node.role == "head" else "slurmd"
        out = cluster.run(node, f"dpkg-query -W -f '${{Package}} ${{Version}} ${{Status}}\\n' {daemon} munge slurm-client")
        found = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()}
        assert set(found) == {daemon, "munge", "slurm-client"}, (node.name, out)
        assert all(status == "install ok installed" for _, status in found.values()), (node.name, out)
        assert re.fullmatch(rf"{re.escape(cluster.series)}\.\d+\S*", found[daemon][0]) and found["slurm-client"][0] == found[daemon][0], out
        # from the only source there is: the head's site mirror (no route out to Debian's archive)
        policy = cluster.run(node, f"apt-cache policy {daemon}")
        assert f"500 {cluster.plan.repo_url.rstrip('/')} ./ Packages" in policy, policy
        assert "deb.debian.org" not in policy
    log = (cluster.plan.node_dir(cluster.plan.heads[0].name) / "site-mirror.log").read_text()
    for node in cluster.plan.computes:
        assert re.search(rf"^{re.escape(node.private_address)} .*\"GET /\./slurmd_{re.escape(cluster.series)}\.\S+\.deb HTTP/1\.1\" 200",
                         log, re.M), node.name


def test_daemons_are_systemd_units_active_and_enabled(cluster):
    for node in cluster.plan.nodes:
        assert cluster.run(node, "cat /proc/1/comm").strip() == "systemd"
        units = ["munge", "slurmctld" if node.role == "head" else "slurmd"]
        out = cluster.run(node, f"systemctl is-active {' '.join(units)}; systemctl is-enabled {' '.join(units)}")
        assert out.split() == ["active"] * len(units) + ["enabled"] * len(units), (node.name, out)
        # run by systemd, not started beside it
        main = cluster.run(node, f"systemctl show -p MainPID --value {units[1]}").strip()
        assert main != "0" and cluster.run(node, f"cat /proc/{main}/comm").strip() == units[1]


def test_srun_runs_on_both_computes_under_their_own_hostnames(cluster):
    head = cluster.plan.heads[0]
    out = cluster.run(head, "timeout 120 srun -N2 hostname")
    assert sorted(out.split()) == sorted(n.name for n in cluster.plan.computes), out


def test_a_second_bootstrap_changes_nothing(cluster):
    report = _bootstrap(cluster)
    assert report["failed_hosts"] == [] and report["changed"] == 0, json.dumps(report)[:4000]
    for node in cluster.plan.nodes:
        assert set(_steps(report, node.name).values()) <= {"ok"}, (node.name, _steps(report, node.name))
