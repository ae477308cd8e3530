"""OS images for local nodes that are machines: the pure parts (archive, staleness, recipe, parsers, plan)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from slurmkit.local import LocalClusterError
from slurmkit.local import images as li
from slurmkit.local.cluster import SimulatedHardware, make_plan, node_mounts, sshd_config, Plan
from slurmkit.local.netns import mount_calls, nspawn_argv

# /etc/apt/sources.list.d/debian.sources as found on this project's machine (deb822)
DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# `apt-cache policy slurmd` in the debian-13 image's chroot, as captured on this machine
POLICY_TRIXIE = """\
slurmd:
  Installed: (none)
  Candidate: 24.11.5-4+deb13u1
  Version table:
     24.11.5-4+deb13u1 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
"""


def test_mirror_from_deb822_sources_skips_security():
    assert li.mirror_from_sources([("debian.sources", DEB822)]) == "http://deb.debian.org/debian"
    only_security = DEB822.split("\n\n")[1]
    assert li.mirror_from_sources([("debian.sources", only_security)]) is None


def test_mirror_from_one_line_sources_with_options_and_comments():
    text = ("# deb http://old.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian/ bookworm main\n")
    assert li.mirror_from_sources([("sources.list", text)]) == "http://mirror.example/debian"
    assert li.mirror_from_sources([("sources.list", "deb-src http://x/debian bookworm main\n")]) is None


def test_disabled_deb822_stanza_is_skipped():
    text = "Types: deb\nURIs: http://a/debian\nEnabled: no\n\nTypes: deb\nURIs: http://b/debian\n"
    assert li.mirror_from_sources([("x.sources", text)]) == "http://b/debian"


def test_recipe_hash_follows_suite_packages_and_mirror(monkeypatch):
    trixie, sid = li.IMAGES["debian-13"], li.IMAGES["debian-sid"]
    h = li.recipe_hash(trixie, "http://a/debian")
    assert h == li.recipe_hash(trixie, "http://a/debian")
    assert h != li.recipe_hash(sid, "http://a/debian") and h != li.recipe_hash(trixie, "http://b/debian")
    monkeypatch.setattr(li, "PACKAGES", li.PACKAGES + ("vim",))
    assert li.recipe_hash(trixie, "http://a/debian") != h


def test_staleness():
    now = 1_800_000_000.0
    assert li.staleness(None, "abc", now) == "not built"
    assert li.staleness({"recipe": "abc", "built_at": now - 86400}, "abc", now) is None
    assert "recipe changed" in li.staleness({"recipe": "old", "built_at": now}, "abc", now)
    assert "older than 30 days" in li.staleness({"recipe": "abc", "built_at": now - 31 * 86400}, "abc", now)


def test_sid_needs_valid_until_off_and_the_others_not():
    assert li.IMAGES["debian-sid"].apt_conf == 'Acquire::Check-Valid-Until "false";\n'
    assert li.IMAGES["debian-13"].apt_conf == ""


def test_base_image_has_no_slurm_and_no_munge():
    assert not any("slurm" in p or "munge" in p for p in li.PACKAGES)
    for needed in ("openssh-server", "openssh-sftp-server", "systemd", "iproute2", "procps", "python3", "sudo",
                   "ca-certificates"):
        assert needed in li.PACKAGES


def test_parsers():
    assert li.parse_policy_candidate(POLICY_TRIXIE) == "24.11.5-4+deb13u1"
    assert li.parse_policy_candidate("slurmd:\n  Installed: (none)\n  Candidate: (none)\n") is None
    assert li.parse_policy_candidate("") is None
    osr = li.parse_os_release('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\nID=debian\n')
    assert osr == {"PRETTY_NAME": "Debian GNU/Linux 13 (trixie)", "VERSION_ID": "13", "ID": "debian"}


def test_unknown_image_names_the_choices():
    with pytest.raises(LocalClusterError, match="debian-12, debian-13, debian-sid"):
        li.spec("ubuntu-22.04")


HW = SimulatedHardware(1, 2, 1, 24105)
ROOT = "/var/cache/slurmkit/images/debian-13/root"


def image_plan(boot: bool) -> Plan:
    return make_plan("demo", 2, 1, HW, [], state_root=Path("/var/lib/slurmkit/local"), image="debian-13",
                     image_root=ROOT, boot=boot)


def test_light_plan_has_no_image_and_round_trips():
    p = make_plan("demo", 2, 1, HW, [])
    assert (p.image, p.image_root, p.boot) == (None, None, False)
    assert Plan.from_dict(p.to_dict()) == p
    q = image_plan(True)
    assert Plan.from_dict(q.to_dict()) == q


def test_booted_node_mounts_its_overlay_root_and_names_its_holder():
    p = image_plan(True)
    node = p.computes[0]
    d = "/var/lib/slurmkit/local/demo/nodes/demo-node-1"
    mounts = node_mounts(p, node)
    assert mounts[0].kind == "overlay" and mounts[0].target == f"{d}/root"
    assert mounts[0].source == f"lowerdir={ROOT},upperdir={d}/upper,workdir={d}/work"
    assert [(m.target, m.source) for m in mounts[1:]] == [("/etc/hostname", f"{d}/upper/etc/hostname")]
    assert "HostKey /etc/ssh/ssh_host_ed25519_key" in sshd_config(p, node).splitlines()


def test_chroot_node_mounts_proc_sys_dev_run_and_the_shared_dir_in_its_root():
    p = image_plan(False)
    d = "/var/lib/slurmkit/local/demo/nodes/demo-node-1"
    calls = mount_calls(node_mounts(p, p.computes[0]))
    assert calls[1] == ("overlay", f"{d}/root", "overlay", 0, f"lowerdir={ROOT},upperdir={d}/upper,workdir={d}/work")
    assert ("proc", f"{d}/root/proc", "proc", 0, None) in calls
    assert ("/sys", f"{d}/root/sys", None, 0x1000 | 0x4000, None) in calls  # MS_BIND | MS_REC
    assert (f"{d}/run", f"{d}/root/run", None, 0x1000, None) in calls
    shared = "/var/lib/slurmkit/local/demo/shared"
    assert (shared, f"{d}/root{shared}", None, 0x1000, None) in calls


def test_nspawn_boots_in_the_nodes_network_registered_nowhere():
    argv = nspawn_argv(Path("/x/root"), "demo-node-1", ["/var/lib/slurmkit/local/demo/shared"])
    assert argv[0].endswith("systemd-nspawn")
    for flag in ("--boot", "--register=no", "--keep-unit", "--machine=demo-node-1", "--resolv-conf=off",
                 "--bind=/var/lib/slurmkit/local/demo/shared"):
        assert flag in argv
    assert not any(a.startswith(("--private-network", "--network-")) for a in argv)
    assert argv[argv.index("-D") + 1] == "/x/root"


def test_sid_boots_with_a_unified_cgroup_hierarchy_the_others_with_the_machines():
    # sid's systemd (262 here) refuses cgroup v1: "Detected unsupported legacy cgroup hierarchy, refusing execution"
    assert [n for n, i in li.IMAGES.items() if i.unified_cgroup] == ["debian-sid"]
    assert all(i.boot for i in li.IMAGES.values())
    p = make_plan("demo", 1, 1, HW, [], image="debian-sid", image_root=ROOT, boot=True, unified_cgroup=True)
    assert p.unified_cgroup and Plan.from_dict(p.to_dict()) == p
    assert not make_plan("demo", 1, 1, HW, [], image="debian-sid", image_root=ROOT, boot=False,
                         unified_cgroup=True).unified_cgroup


@pytest.fixture
def fake_builds(tmp_path, monkeypatch):
    """build() with the machine parts replaced (no root, no debootstrap): what is left is the lock, the temporary
    directory renamed into place, staleness and the old roots; ``calls`` counts root builds."""
    import threading
    import time

    from slurmkit.local import netns

    calls: list[str] = []
    lock = threading.Lock()

    def build_root(image, mirror, root, log):
        with lock:
            calls.append(image.name)
        time.sleep(0.2)  # long enough for a second caller to arrive while this one builds
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "os-release").write_text('PRETTY_NAME="test"\n')
        return {"os_release": "test", "slurm_candidate": None}

    monkeypatch.setattr(netns, "preflight", lambda binaries=(): None)
    monkeypatch.setattr(li, "machine_mirror", lambda: "http://mirror.example/debian")
    monkeypatch.setattr(li, "ensure_tools", lambda binaries: None)
    monkeypatch.setattr(li, "_build_root", build_root)
    return tmp_path / "cache", tmp_path / "state", calls


def test_two_concurrent_builds_build_once(fake_builds):
    import threading

    cache, _, calls = fake_builds
    results = []
    threads = [threading.Thread(target=lambda: results.append(li.build("debian-13", cache))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["debian-13"]
    assert all(r.built and r.stale is None for r in results)
    assert sorted(p.name for p in cache.iterdir()) == ["debian-13", "debian-13.build.log", "debian-13.lock"]


def test_a_failed_build_leaves_no_image_and_no_temp_dir(fake_builds, monkeypatch):
    cache, _, _ = fake_builds

    def broken(image, mirror, root, log):
        root.mkdir()
        raise LocalClusterError("debootstrap trixie failed (injected)")

    monkeypatch.setattr(li, "_build_root", broken)
    with pytest.raises(LocalClusterError, match="injected"):
        li.build("debian-13", cache)
    assert not li.info("debian-13", cache, "http://mirror.example/debian").built
    assert not list(cache.glob(".debian-13.*"))


def test_a_stale_image_is_rebuilt_and_its_old_root_kept_while_a_cluster_runs_on_it(fake_builds, monkeypatch):
    import json

    cache, state, calls = fake_builds
    li.build("debian-13", cache)
    meta = cache / "debian-13" / "image.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "built_at": data["built_at"] - 31 * 86400}))
    assert "older than 30 days" in li.info("debian-13", cache, "http://mirror.example/debian").stale
    (state / "sdx").mkdir(parents=True)
    (state / "sdx" / "state.json").write_text(json.dumps({"plan": {"image": "debian-13"}}))
    monkeypatch.setattr("slurmkit.local.cluster.STATE_ROOT", state)
    li.build("debian-13", cache)
    assert calls == ["debian-13", "debian-13"]
    assert li.info("debian-13", cache, "http://mirror.example/debian").stale is None
    assert len(list(cache.glob(".debian-13.old-*"))) == 1  # sdx's nodes still read it
    (state / "sdx" / "state.json").unlink()
    assert len(li.remove_old_roots("debian-13", cache, state)) == 1
    assert not list(cache.glob(".debian-13.old-*"))
