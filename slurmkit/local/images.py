"""OS images for local nodes that are machines: a Debian root filesystem built once with debootstrap, cached.

An image is ``CACHE_ROOT/NAME/`` holding ``root/`` (the root filesystem every node of ``local up --image NAME``
boots, each through an overlayfs layer of its own) and ``image.json`` (what was built, from what, when, and what it
holds). It has what a rented node always has (sshd, systemd, iproute2, procps, python3, sudo, CA certificates) and
no Slurm and no munge: bootstrap installs those.

A built image is stale when its recipe (suite, packages, build steps: :func:`recipe_hash`) changed or it is older
than ``MAX_AGE_DAYS`` (the archive moved on: security updates). Builds take a lock per image (two test runs do not
build the same image twice) and go into a temporary directory renamed into place when complete, so a half-built
image is never used.

Beside the root, ``NAME/repo/`` is the image's package repository (:func:`build_repo`, same lock, temp-dir and
staleness rules; rebuilt with the image): the .debs that :data:`REPO_PACKAGES` need on that image and the image
lacks, resolved by apt in the image's own root (through a throw-away overlay) against Debian's archive, indexed as
a flat repository (Packages, Release). ``local up --image`` serves it from the first head's private address (an
HTTP server in that head's network namespace, ended by ``local down`` with the node's other processes) and makes
it every node's only apt source: this is the local stand-in for a site mirror, since the nodes have no route out.
A real cluster differs only in where apt looks: its nodes keep their distribution's own sources (Debian's or
Ubuntu's archive, or the site's signed mirror of it) and bootstrap's ``apt-get update && apt-get install`` is the
same; the local repository is unsigned (``Trusted: yes`` on the cluster network), a real archive is signed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from slurmkit.local import LocalClusterError

CACHE_ROOT = Path(os.environ.get("SLURMKIT_IMAGE_CACHE", "/var/cache/slurmkit/images"))
MAX_AGE_DAYS = 30
RECIPE_VERSION = 1  # bump when the build steps below change in a way the hash of their inputs does not see

# What a rented node always has (no Slurm, no munge: bootstrap installs those).
# openssh-sftp-server: only a Recommends of openssh-server, and Fabric's put needs it.
PACKAGES = ("openssh-server", "openssh-sftp-server", "systemd", "systemd-sysv", "dbus", "iproute2", "procps",
            "python3", "sudo", "ca-certificates")


@dataclass(frozen=True)
class ImageSpec:
    """One image slurmkit knows how to build."""

    name: str
    suite: str  # the Debian suite debootstrap installs
    release: str  # what /etc/os-release says (VERSION_ID, or the codename where there is none)
    boot: bool  # nodes boot systemd as PID 1 (systemd-nspawn); False: sshd started directly in a chroot
    # The container gets a cgroup v2 (unified) hierarchy instead of the machine's v1 one: systemd >= 258 refuses
    # v1 ("Detected unsupported legacy cgroup hierarchy, refusing execution", sid's 262 here).
    unified_cgroup: bool = False

    @property
    def apt_conf(self) -> str:
        """apt settings the image needs: sid's Release is past its Valid-Until on an archive snapshot."""
        if self.suite == "sid":
            return 'Acquire::Check-Valid-Until "false";\n'
        return ""


IMAGES: dict[str, ImageSpec] = {
    "debian-12": ImageSpec("debian-12", "bookworm", "12", boot=True),
    "debian-13": ImageSpec("debian-13", "trixie", "13", boot=True),
    "debian-sid": ImageSpec("debian-sid", "sid", "sid", boot=True, unified_cgroup=True),
}


def spec(name: str) -> ImageSpec:
    try:
        return IMAGES[name]
    except KeyError:
        raise LocalClusterError(f"unknown image {name!r}: choose one of {', '.join(IMAGES)} (`slurmkit local images`)") from None


def recipe_hash(image: ImageSpec, mirror: str) -> str:
    """What the built root depends on; a change makes the cached image stale. Pure."""
    text = json.dumps([RECIPE_VERSION, image.suite, sorted(PACKAGES), image.apt_conf, mirror])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_dir(name: str, cache_root: Path | None = None) -> Path:
    return (cache_root or CACHE_ROOT) / name


def root_dir(name: str, cache_root: Path | None = None) -> Path:
    return image_dir(name, cache_root) / "root"


# ---------------------------------------------------------------------------------------------------------------
# The machine's Debian archive


def mirror_from_sources(texts: list[tuple[str, str]]) -> str | None:
    """The URI of the machine's main Debian archive from its apt sources: (file name, text) of
    ``/etc/apt/sources.list.d/*.sources`` (deb822) and ``*.list`` / ``/etc/apt/sources.list`` (one-line). The
    security archive is skipped. Pure."""
    for fname, text in texts:
        if fname.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if "deb" not in fields.get("Types", "").split():
                    continue
                if fields.get("Enabled", "yes").strip().lower() == "no":
                    continue
                for uri in fields.get("URIs", "").split():
                    if "security" not in uri:
                        return uri.rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # drop "[signed-by=...]"
                if len(words) >= 3 and words[0] == "deb" and "security" not in words[1]:
                    return words[1].rstrip("/")
    return None


def machine_mirror() -> str:
    """The Debian archive this machine's apt uses (its sources), for debootstrap."""
    texts: list[tuple[str, str]] = []
    d = Path("/etc/apt/sources.list.d")
    files = sorted(p for p in d.glob("*") if p.suffix in (".sources", ".list")) if d.is_dir() else []
    files.append(Path("/etc/apt/sources.list"))
    for p in files:
        try:
            texts.append((p.name, p.read_text()))
        except OSError:
            continue
    uri = mirror_from_sources(texts)
    if uri is None:
        raise LocalClusterError(
            "no Debian archive in /etc/apt/sources.list.d/ or /etc/apt/sources.list: images are built with "
            "debootstrap from the machine's archive; add a `deb` source (e.g. http://deb.debian.org/debian)"
        )
    return uri


def ensure_tools(binaries: dict[str, str]) -> None:
    """Install the machine packages providing ``binaries`` (binary -> package) with apt when missing."""
    from slurmkit.local.netns import which

    missing = sorted({pkg for b, pkg in binaries.items() if which(b) is None})
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if proc.returncode != 0:
        proc = subprocess.run(["sh", "-c", "apt-get update -q && " + " ".join(cmd)], capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if proc.returncode != 0:
        raise LocalClusterError(
            f"local images need {', '.join(missing)} on this machine and `{' '.join(cmd)}` failed "
            f"(exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}; install them and retry"
        )


# ---------------------------------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class ImageInfo:
    """One image as ``local images`` shows it."""

    name: str
    suite: str
    release: str
    boot: bool
    path: str
    built: bool
    stale: str | None  # why it would be rebuilt, or None
    size_bytes: int | None
    built_at: float | None
    build_seconds: float | None
    os_release: str | None  # PRETTY_NAME of the built root
    slurm_candidate: str | None  # the slurmd version its archive offers (installed by bootstrap, not in the image)
    repo_slurm: str | None = None  # the slurmd version its package repository (the nodes' site mirror) holds
    repo_size_bytes: int | None = None
    repo_stale: str | None = "not built"  # why `local up` would (re)build the repository, or None

    @property
    def age_days(self) -> float | None:
        return None if self.built_at is None else (time.time() - self.built_at) / 86400

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["age_days"] = None if self.age_days is None else round(self.age_days, 2)
        return d


def _read_meta(name: str, cache_root: Path | None) -> dict | None:
    try:
        return json.loads((image_dir(name, cache_root) / "image.json").read_text())
    except (OSError, ValueError):
        return None


def staleness(meta: dict | None, expected_hash: str, now: float, max_age_days: float = MAX_AGE_DAYS) -> str | None:
    """Why a built image (its image.json) must be rebuilt, or None. Pure."""
    if meta is None:
        return "not built"
    if meta.get("recipe") != expected_hash:
        return f"recipe changed ({meta.get('recipe')} -> {expected_hash})"
    age = (now - float(meta.get("built_at", 0))) / 86400
    if age > max_age_days:
        return f"older than {max_age_days} days ({age:.0f} days)"
    return None


def info(name: str, cache_root: Path | None = None, mirror: str | None = None) -> ImageInfo:
    image = spec(name)
    meta = _read_meta(name, cache_root)
    built = meta is not None and root_dir(name, cache_root).is_dir()
    repo = _repo_meta(name, cache_root)
    try:
        expected = recipe_hash(image, mirror or machine_mirror())
    except LocalClusterError:
        expected = "?"
    return ImageInfo(
        name=name, suite=image.suite, release=image.release, boot=image.boot, path=str(image_dir(name, cache_root)),
        built=built, stale=staleness(meta if built else None, expected, time.time()),
        size_bytes=(meta or {}).get("size_bytes"), built_at=(meta or {}).get("built_at"),
        build_seconds=(meta or {}).get("build_seconds"), os_release=(meta or {}).get("os_release"),
        slurm_candidate=(meta or {}).get("slurm_candidate"),
        repo_slurm=(repo or {}).get("slurm_version"), repo_size_bytes=(repo or {}).get("size_bytes"),
        repo_stale=repo_staleness(repo, meta if built else None),
    )


def list_images(cache_root: Path | None = None) -> list[ImageInfo]:
    try:
        mirror = machine_mirror()
    except LocalClusterError:
        mirror = None
    return [info(name, cache_root, mirror) for name in IMAGES]


# ---------------------------------------------------------------------------------------------------------------
# Building


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release as a dict (quotes removed). Pure."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def parse_policy_candidate(text: str) -> str | None:
    """The ``Candidate:`` of ``apt-cache policy PKG`` (None for ``(none)`` or no output). Pure."""
    m = re.search(r"^\s*Candidate:\s*(\S+)", text, re.M)
    return m.group(1) if m and m.group(1) != "(none)" else None


def _du(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def _run(argv: list[str], what: str, log, env: dict | None = None) -> str:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    log.write(proc.stdout + proc.stderr)
    log.flush()
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise LocalClusterError(f"image build: {what} failed (exit {proc.returncode}); log {log.name}:\n{tail}")
    return proc.stdout


CHROOT_SCRIPT = """\
set -e
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t sysfs sys "$R/sys"
chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -c "$CMD"
"""


def _in_root(root: Path, command: str, what: str, log) -> str:
    """Run a shell command chrooted in ``root``, with /proc, /dev and /sys in a private mount namespace (gone with
    it: nothing to unmount)."""
    return _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", CHROOT_SCRIPT], what, log,
                env={"R": str(root), "CMD": command})


def _build_root(image: ImageSpec, mirror: str, root: Path, log) -> dict:
    _run(["debootstrap", "--variant=minbase", image.suite, str(root), mirror], f"debootstrap {image.suite}", log)
    if image.apt_conf:
        (root / "etc/apt/apt.conf.d/99slurmkit").write_text(image.apt_conf)
    # Packages must not start daemons in the build (nor could they: no init here).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    _in_root(root, f"apt-get update -q && apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)}",
             "apt-get install " + " ".join(PACKAGES), log)
    candidate = parse_policy_candidate(_in_root(root, "apt-cache policy slurmd", "apt-cache policy slurmd", log))
    _in_root(root, "apt-get clean", "apt-get clean", log)
    policy.unlink()
    # Each node gets its own host key and resolv.conf (written by `local up`); the machine's CA bundle replaces
    # the image's, so that pip and curl inside trust what this machine trusts (a proxy's CA, say).
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        shutil.copy2(ca, root / "etc/ssl/certs/ca-certificates.crt")
    (root / "etc/machine-id").write_text("")  # each boot makes its own
    os_release = parse_os_release((root / "etc/os-release").read_text()) if (root / "etc/os-release").exists() else {}
    return {"os_release": os_release.get("PRETTY_NAME"), "slurm_candidate": candidate}


def build(name: str, cache_root: Path | None = None, force: bool = False, log_stream=None) -> ImageInfo:
    """Build image ``name`` unless a fresh one is cached (``force``: always); returns its info.

    Holds ``CACHE_ROOT/NAME.lock`` while it checks and builds: a second caller waits, then finds it built."""
    from slurmkit.local import netns

    netns.preflight(binaries=())
    image = spec(name)
    cache = cache_root or CACHE_ROOT
    cache.mkdir(parents=True, exist_ok=True)
    mirror = machine_mirror()
    expected = recipe_hash(image, mirror)
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = info(name, cache, mirror)
        if current.built and current.stale is None and not force:
            return current
        ensure_tools({"debootstrap": "debootstrap"})
        free = shutil.disk_usage(cache).free
        if free < 2 * 1024**3:
            raise LocalClusterError(f"image build: {free // 2**20} MiB free under {cache}; an image needs ~1 GiB")
        for left in cache.glob(f".{name}.build-*"):  # a build killed midway (this one holds the lock)
            shutil.rmtree(left, ignore_errors=True)
        tmp = cache / f".{name}.build-{os.getpid()}"
        tmp.mkdir()
        t0 = time.time()
        log_path = cache / f"{name}.build.log"
        with open(log_path, "w") as log:
            try:
                if log_stream is not None:
                    log_stream(f"building image {name} ({image.suite} from {mirror}) into {tmp}; log {log_path}")
                extra = _build_root(image, mirror, tmp / "root", log)
                meta = {
                    "name": name, "suite": image.suite, "mirror": mirror, "recipe": expected,
                    "packages": list(PACKAGES), "built_at": time.time(), "build_seconds": round(time.time() - t0, 1),
                    "size_bytes": _du(tmp / "root"), **extra,
                }
                (tmp / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
                final = image_dir(name, cache)
                if final.exists():
                    final.rename(cache / f".{name}.old-{time.time_ns()}")
                tmp.rename(final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        remove_old_roots(name, cache)
        return info(name, cache, mirror)


def clusters_using(name: str, state_root: Path | None = None) -> list[str]:
    """Local clusters (their state.json) whose nodes run on image ``name``."""
    from slurmkit.local.cluster import STATE_ROOT

    found = []
    for state in sorted((state_root or STATE_ROOT).glob("*/state.json")):
        try:
            if json.loads(state.read_text())["plan"].get("image") == name:
                found.append(state.parent.name)
        except (OSError, ValueError, KeyError, AttributeError):
            continue
    return found


def remove_old_roots(name: str, cache_root: Path | None = None, state_root: Path | None = None) -> list[Path]:
    """Remove the roots a rebuild replaced (``.NAME.old-*``) once no local cluster runs on image ``name``: a
    running node's overlay still reads its lower layer from the old directory."""
    cache = cache_root or CACHE_ROOT
    old = sorted(cache.glob(f".{name}.old-*"))
    if not old or clusters_using(name, state_root):
        return []
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    return old


def ensure(name: str, log_stream=None) -> ImageInfo:
    """The image, built first if it is missing or stale."""
    return build(name, log_stream=log_stream)


# ---------------------------------------------------------------------------------------------------------------
# The image's package repository: what bootstrap installs, served to the nodes as a site mirror would be

# What bootstrap installs (and what accounting will; slurm-wlm: the metapackage of all three daemons, which a
# playbook may name instead): resolved in the image root, so the repository holds exactly
# the .debs these need that the image lacks.
REPO_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server", "slurm-wlm")
REPO_VERSION = 1  # bump when the repository's build steps change
REPO_PORT = 80  # the head serves it on its private address, as a site mirror would
# apt resolutions downloaded: the whole set with and without Recommends, and each package alone without (what
# bootstrap's `apt-get install --no-install-recommends` of any subset resolves to is in their union).
_REPO_SETS = [("", REPO_PACKAGES)] + [("--no-install-recommends", REPO_PACKAGES)] + [
    ("--no-install-recommends", (p,)) for p in REPO_PACKAGES]


def repo_dir(name: str, cache_root: Path | None = None) -> Path:
    return image_dir(name, cache_root) / "repo"


def _repo_meta(name: str, cache_root: Path | None) -> dict | None:
    try:
        return json.loads((repo_dir(name, cache_root) / "repo.json").read_text())
    except (OSError, ValueError):
        return None


def repo_staleness(repo: dict | None, image: dict | None) -> str | None:
    """Why an image's repository (its repo.json) must be rebuilt, given the image's image.json, or None. Pure."""
    if image is None:
        return "image not built"
    if repo is None:
        return "not built"
    if repo.get("image_built_at") != image.get("built_at"):
        return "image rebuilt since"
    if repo.get("version") != REPO_VERSION or sorted(repo.get("packages", [])) != sorted(REPO_PACKAGES):
        return "recipe changed"
    return None


def deb_stanza(control: str, filename: str, data: bytes) -> str:
    """The Packages stanza of one .deb: its control fields (``dpkg-deb -f``), then Filename, Size and hashes, as
    dpkg-scanpackages writes them. Pure."""
    lines = [line for line in control.rstrip("\n").splitlines() if line.strip()]
    return "\n".join(lines + [
        f"Filename: ./{filename}", f"Size: {len(data)}", f"MD5sum: {hashlib.md5(data).hexdigest()}",
        f"SHA1: {hashlib.sha1(data).hexdigest()}", f"SHA256: {hashlib.sha256(data).hexdigest()}",
    ]) + "\n"


def deb_filename(fields: dict[str, str]) -> str:
    """A .deb's file name in the repository: PACKAGE_VERSION_ARCH.deb without the epoch (no ``:`` or ``%`` in a
    URL path). Pure."""
    version = fields["Version"].split(":", 1)[-1]
    return f"{fields['Package']}_{version}_{fields.get('Architecture', 'all')}.deb"


def release_file(files: dict[str, bytes], label: str, date: str, architectures: str) -> str:
    """A flat repository's Release: what it is and the size and hashes of its index files. Pure."""
    out = [f"Origin: slurmkit", f"Label: {label}", "Suite: ./", f"Date: {date}", f"Architectures: {architectures}",
           "Description: slurmkit local site mirror: the Slurm and munge packages of one local image"]
    for field_name, fn in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
        out.append(f"{field_name}:")
        out += [f" {fn(data).hexdigest()} {len(data)} {name}" for name, data in sorted(files.items())]
    return "\n".join(out) + "\n"


def packages_versions(packages_text: str) -> dict[str, str]:
    """Package -> Version of a Packages index. Pure."""
    out = {}
    for stanza in re.split(r"\n\s*\n", packages_text):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+):\s*(.*)$", stanza, re.M))
        if "Package" in fields and "Version" in fields:
            out[fields["Package"]] = fields["Version"]
    return out


def node_apt_sources(url: str) -> str:
    """A node's only apt source: the cluster's site mirror (a flat, unsigned repository on the cluster network:
    ``Trusted: yes``, as a site's internal mirror often is). Pure."""
    return f"Types: deb\nURIs: {url}\nSuites: ./\nTrusted: yes\n"


REPO_SCRIPT = """\
set -e
mount -t overlay overlay -o "lowerdir=$R,upperdir=$T/upper,workdir=$T/work" "$T/merged"
M="$T/merged"
mkdir -p "$M/slurmkit-debs"
mount --bind "$T/debs" "$M/slurmkit-debs"
mount -t proc proc "$M/proc"
mount --rbind /dev "$M/dev"
mount -t sysfs sys "$M/sys"
cp /etc/resolv.conf "$M/etc/resolv.conf"
chroot "$M" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -c "$CMD"
"""


def _download_debs(root: Path, work: Path, log) -> None:
    """Download into ``work/debs`` what REPO_PACKAGES need on the image ``root``: apt in the image's own root
    (its dpkg database: only what the image lacks), through an overlay in a private mount namespace so that the
    image itself is untouched (nodes may be running on it)."""
    for d in ("upper", "work", "merged", "debs/partial"):
        (work / d).mkdir(parents=True, exist_ok=True)
    opts = "-o Dir::Cache::archives=/slurmkit-debs/ -o APT::Keep-Downloaded-Packages=true"
    cmd = "apt-get update -q && " + " && ".join(
        f"apt-get install -y -q --download-only {flag} {opts} {' '.join(pkgs)}" for flag, pkgs in _REPO_SETS)
    _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", REPO_SCRIPT],
         "apt-get install --download-only " + " ".join(REPO_PACKAGES), log,
         env={"R": str(root), "T": str(work), "CMD": cmd})


def _index(repo: Path, label: str) -> dict[str, str]:
    """Write Packages, Packages.gz and Release of the flat repository ``repo`` (its .debs); package -> version."""
    import gzip
    from email.utils import formatdate

    stanzas, arches = [], set()
    for deb in sorted(repo.glob("*.deb")):
        proc = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise LocalClusterError(f"image repository: `dpkg-deb -f {deb}` failed: {proc.stderr.strip()}")
        fields = dict(re.findall(r"^([A-Za-z0-9-]+):\s*(.*)$", proc.stdout, re.M))
        plain = deb_filename(fields)
        if plain != deb.name:  # apt's "1%3a5.2" (an epoch) would reach the server as "1:5.2"
            deb = deb.rename(repo / plain)
        stanza = deb_stanza(proc.stdout, deb.name, deb.read_bytes())
        arches.add(dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)).get("Architecture", "all"))
        stanzas.append(stanza)
    packages = "\n".join(stanzas).encode()
    files = {"Packages": packages, "Packages.gz": gzip.compress(packages, mtime=0)}
    for fname, data in files.items():
        (repo / fname).write_bytes(data)
    (repo / "Release").write_text(release_file(files, label, formatdate(usegmt=True), " ".join(sorted(arches))))
    return packages_versions(packages.decode())


def remove_old_repos(name: str, cache_root: Path | None = None, state_root: Path | None = None) -> list[Path]:
    """Remove the repositories a rebuild replaced (``.NAME.repo-old-*``) once no local cluster runs on image
    ``name`` (its site mirror serves the directory by path)."""
    cache = cache_root or CACHE_ROOT
    old = sorted(cache.glob(f".{name}.repo-old-*"))
    if not old or clusters_using(name, state_root):
        return []
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    return old


def build_repo(name: str, cache_root: Path | None = None, force: bool = False, log_stream=None,
               state_root: Path | None = None) -> dict:
    """Build image ``name``'s package repository (``NAME/repo/``) unless a fresh one is there; its repo.json.

    The image must be built. Holds ``NAME.repo.lock`` while it checks and builds; builds into a temporary
    directory renamed into place when complete."""
    cache = cache_root or CACHE_ROOT
    image_meta = _read_meta(name, cache)
    root = root_dir(name, cache)
    if image_meta is None or not root.is_dir():
        raise LocalClusterError(f"image {name} is not built: `slurmkit local images build {name}`")
    with open(cache / f"{name}.repo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _repo_meta(name, cache)
        remove_old_repos(name, cache, state_root)
        if repo_staleness(current, image_meta) is None and not force:
            return current
        free = shutil.disk_usage(cache).free
        if free < 1024**3:
            raise LocalClusterError(f"image repository: {free // 2**20} MiB free under {cache}; it needs ~300 MiB")
        for left in cache.glob(f".{name}.repo-build-*"):  # a build killed midway (this one holds the lock)
            shutil.rmtree(left, ignore_errors=True)
        tmp = cache / f".{name}.repo-build-{os.getpid()}"
        tmp.mkdir()
        t0 = time.time()
        log_path = cache / f"{name}.repo.log"
        try:
            with open(log_path, "w") as log:
                if log_stream is not None:
                    log_stream(f"building the package repository of image {name} ({', '.join(REPO_PACKAGES)}) "
                               f"from {image_meta.get('mirror')}; log {log_path}")
                _download_debs(root, tmp, log)
            repo = tmp / "repo"
            (tmp / "debs").rename(repo)
            shutil.rmtree(repo / "partial", ignore_errors=True)
            (repo / "lock").unlink(missing_ok=True)
            versions = _index(repo, f"slurmkit {name}")
            missing = [p for p in REPO_PACKAGES if p not in versions]
            if missing:
                raise LocalClusterError(f"image repository of {name}: no .deb of {', '.join(missing)} was downloaded; "
                                        f"log {log_path}")
            meta = {
                "image": name, "version": REPO_VERSION, "packages": list(REPO_PACKAGES),
                "image_built_at": image_meta.get("built_at"), "mirror": image_meta.get("mirror"),
                "built_at": time.time(), "build_seconds": round(time.time() - t0, 1),
                "debs": len(list(repo.glob("*.deb"))), "size_bytes": _du(repo),
                "slurm_version": versions.get("slurmd"), "versions": {p: versions[p] for p in REPO_PACKAGES},
            }
            (repo / "repo.json").write_text(json.dumps(meta, indent=2) + "\n")
            final = repo_dir(name, cache)
            if final.exists():
                # a running cluster's server reads the old one by path: it is replaced whole, never edited
                final.rename(cache / f".{name}.repo-old-{time.time_ns()}")
            repo.rename(final)
            remove_old_repos(name, cache, state_root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return meta


def ensure_repo(name: str, log_stream=None) -> dict:
    """The image's repository, built first if it is missing or stale (the image must be built)."""
    return build_repo(name, log_stream=log_stream)
