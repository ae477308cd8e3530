"""The local images' package repository (the nodes' site mirror): its index, staleness, the nodes' apt sources."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from slurmkit.local import LocalClusterError
from slurmkit.local import images as li
from slurmkit.local.cluster import SimulatedHardware, make_plan, write_apt_sources

# `dpkg-deb -f munge_0.5.16-1.1~deb13u1_amd64.deb`, downloaded into the debian-13 repository on this machine
# (Description cut after its first two lines)
MUNGE_CONTROL = """\
Package: munge
Version: 0.5.16-1.1~deb13u1
Architecture: amd64
Maintainer: Gennaro Oliva <oliva@debian.org>
Installed-Size: 389
Pre-Depends: init-system-helpers (>= 1.54~)
Depends: libbz2-1.0, libc6 (>= 2.38), libgcrypt20 (>= 1.11.0), libmunge2 (= 0.5.16-1.1~deb13u1), zlib1g (>= 1:1.1.4), adduser
Section: admin
Priority: optional
Homepage: https://dun.github.io/munge
Description: authentication service to create and validate credentials
 MUNGE (MUNGE Uid 'N' Gid Emporium) is an authentication service
 .
 Clients can create and validate these credentials without the use
"""

IMAGE_META = {"name": "debian-13", "built_at": 1796227034.842126, "mirror": "http://deb.debian.org/debian"}


def test_deb_stanza_is_the_control_then_file_size_and_hashes():
    data = b"not really a deb, only bytes to hash"
    stanza = li.deb_stanza(MUNGE_CONTROL, "munge_0.5.16-1.1~deb13u1_amd64.deb", data)
    assert stanza.startswith(MUNGE_CONTROL)
    tail = stanza[len(MUNGE_CONTROL):].splitlines()
    assert tail == [
        "Filename: ./munge_0.5.16-1.1~deb13u1_amd64.deb",
        f"Size: {len(data)}",
        f"MD5sum: {hashlib.md5(data).hexdigest()}",
        f"SHA1: {hashlib.sha1(data).hexdigest()}",
        f"SHA256: {hashlib.sha256(data).hexdigest()}",
    ]
    assert li.packages_versions(stanza + "\n" + stanza.replace("munge", "libmunge2", 1)) == {
        "munge": "0.5.16-1.1~deb13u1", "libmunge2": "0.5.16-1.1~deb13u1"}


def test_deb_filename_drops_the_epoch():
    # apt-get download names it gawk_1%3a5.2.1-2+b1_amd64.deb: "%3a" would reach the server decoded as ":"
    assert li.deb_filename({"Package": "gawk", "Version": "1:5.2.1-2+b1", "Architecture": "amd64"}) == \
        "gawk_5.2.1-2+b1_amd64.deb"
    assert li.deb_filename({"Package": "slurmd", "Version": "24.11.5-4+deb13u1", "Architecture": "amd64"}) == \
        "slurmd_24.11.5-4+deb13u1_amd64.deb"


def test_release_lists_each_index_with_its_size_and_hashes():
    packages = b"Package: munge\nVersion: 1\n"
    files = {"Packages": packages, "Packages.gz": gzip.compress(packages, mtime=0)}
    text = li.release_file(files, "slurmkit debian-13", "Wed, 02 Dec 2026 16:16:12 GMT", "all amd64")
    lines = text.splitlines()
    assert "Suite: ./" in lines and "Architectures: all amd64" in lines and "Label: slurmkit debian-13" in lines
    md5 = lines.index("MD5Sum:")
    sha = lines.index("SHA256:")
    assert lines[md5 + 1] == f" {hashlib.md5(packages).hexdigest()} {len(packages)} Packages"
    assert lines[sha + 2] == (f" {hashlib.sha256(files['Packages.gz']).hexdigest()} {len(files['Packages.gz'])} "
                              "Packages.gz")


def test_repo_staleness():
    fresh = {"version": li.REPO_VERSION, "packages": list(li.REPO_PACKAGES), "image_built_at": IMAGE_META["built_at"]}
    assert li.repo_staleness(fresh, IMAGE_META) is None
    assert li.repo_staleness(None, IMAGE_META) == "not built"
    assert li.repo_staleness(fresh, None) == "image not built"
    assert li.repo_staleness({**fresh, "image_built_at": 1.0}, IMAGE_META) == "image rebuilt since"
    assert li.repo_staleness({**fresh, "packages": ["slurmd"]}, IMAGE_META) == "recipe changed"
    assert li.repo_staleness({**fresh, "version": 0}, IMAGE_META) == "recipe changed"


def _cached_image(cache: Path, repo: dict | None) -> None:
    (cache / "debian-13" / "root").mkdir(parents=True)
    (cache / "debian-13" / "image.json").write_text(json.dumps(IMAGE_META))
    if repo is not None:
        (cache / "debian-13" / "repo").mkdir()
        (cache / "debian-13" / "repo" / "repo.json").write_text(json.dumps(repo))


def test_a_fresh_repository_is_not_rebuilt(tmp_path):
    repo = {"version": li.REPO_VERSION, "packages": list(li.REPO_PACKAGES), "image_built_at": IMAGE_META["built_at"],
            "slurm_version": "24.11.5-4+deb13u1", "size_bytes": 47509504}
    _cached_image(tmp_path, repo)
    (tmp_path / ".debian-13.repo-old-1").mkdir()  # replaced while a cluster ran on the image; none runs now
    state = tmp_path / "state"
    state.mkdir()
    assert li.build_repo("debian-13", cache_root=tmp_path, state_root=state) == repo  # as is: no apt, no temp dir
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    i = li.info("debian-13", tmp_path, mirror=IMAGE_META["mirror"])
    assert (i.repo_slurm, i.repo_size_bytes, i.repo_stale) == ("24.11.5-4+deb13u1", 47509504, None)


def test_a_repository_needs_its_image(tmp_path):
    with pytest.raises(LocalClusterError, match="image debian-13 is not built"):
        li.build_repo("debian-13", cache_root=tmp_path)
    assert li.info("debian-13", tmp_path, mirror="x").repo_stale == "image not built"


def _plan(image: str | None):
    hw = SimulatedHardware(1, 2, 1, 2000)
    return make_plan("sdt", 2, 1, hardware=hw, taken=[], image=image,
                     image_root="/var/cache/slurmkit/images/debian-13/root" if image else None, boot=True)


def test_the_site_mirror_is_the_first_heads_private_address():
    plan = _plan("debian-13")
    assert plan.repo_url == f"http://{plan.heads[0].private_address}/"
    assert plan.repo_path == Path("/var/cache/slurmkit/images/debian-13/repo")
    light = _plan(None)
    assert light.repo_url is None and light.repo_path is None


def test_node_apt_sources_name_only_the_site_mirror(tmp_path):
    assert li.node_apt_sources("http://10.100.7.1/") == (
        "Types: deb\nURIs: http://10.100.7.1/\nSuites: ./\nTrusted: yes\n")
    upper = tmp_path / "upper"
    try:
        write_apt_sources(upper, "http://10.100.7.1/")
    except OSError as exc:  # trusted.* xattrs need root and a filesystem that keeps them
        pytest.skip(f"cannot set trusted.overlay.opaque here: {exc}")
    apt = upper / "etc" / "apt"
    assert not (apt / "sources.list").read_text().lstrip().startswith("deb")
    assert sorted(os.listdir(apt / "sources.list.d")) == ["slurmkit-site-mirror.sources"]
    assert "URIs: http://10.100.7.1/" in (apt / "sources.list.d" / "slurmkit-site-mirror.sources").read_text()
    lists = upper / "var" / "lib" / "apt" / "lists"
    assert os.getxattr(lists, "trusted.overlay.opaque") == b"y"  # the image's lists of Debian's archive hidden


def test_a_replaced_repository_stays_while_a_cluster_runs_on_its_image(tmp_path):
    state = tmp_path / "state"
    (state / "sdx").mkdir(parents=True)
    (state / "sdx" / "state.json").write_text(json.dumps({"plan": {"image": "debian-13"}}))
    (tmp_path / ".debian-13.repo-old-1").mkdir()
    assert li.remove_old_repos("debian-13", tmp_path, state) == []
    assert (tmp_path / ".debian-13.repo-old-1").is_dir()
    (state / "sdx" / "state.json").unlink()
    assert li.remove_old_repos("debian-13", tmp_path, state) == [tmp_path / ".debian-13.repo-old-1"]
    assert not (tmp_path / ".debian-13.repo-old-1").exists()
