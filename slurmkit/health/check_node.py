"""slurmkit's node health check: run ON a compute node with that node's own python3 (standard library only).

Shipped inside the slurmkit package as data as much as code: ``slurmkit health`` sends this file's text over
SSH as the standard input of ``python3 - EXPECTED_JSON`` (see :mod:`slurmkit.health.expected` for what
EXPECTED_JSON holds), so nothing is installed on the node. It must not import slurmkit, nor anything outside
Python's standard library, and must run on the oldest python3 of a supported node (3.7: no walrus, no
``list[str]`` at run time).

Prints ONE JSON document on stdout::

    {"host": "...", "ok": false, "checks": [{"id": "gpu-count", "ok": false, "skipped": false,
                                             "message": "7/8 (device files: /dev/nvidia3 missing)"}, ...]}

and exits 0 (every check ran; ``ok`` says whether all passed), 2 for unusable input. A skipped check (no
nvidia-smi, no ibstat, nothing expected) is ``ok`` with ``skipped`` and a message saying why.

Check ids (each message is short: it becomes the Slurm drain reason ``slurmkit:<id> <message>``):
  gpu-count   GPUs seen vs expected: ``nvidia-smi -L`` when it answers, else the expected device files
              (character devices; the local cluster's simulated GPUs are such files)
  gpu-type    the GPU model in ``nvidia-smi -L`` contains the expected type (skipped without nvidia-smi)
  gpu-ecc     NOT CHECKED yet: no real captured nvidia-smi ECC output to parse against (skipped with that note)
  gpu-xid     NOT CHECKED yet: no real captured Xid kernel line to parse against (skipped with that note)
  ib-port     each expected rail HCA has an Active port (``ibstat``)
  ib-rate     that port's rate is at least the rate discovery found
  mount       each needed directory (``shared_dir``) exists, is a directory, and shows the token the head
              wrote there (so a node whose share is not mounted, showing an empty directory, fails)
  munge       ``munge -n | unmunge`` succeeds (a credential made and read back by the node's munged)
  memory      MemTotal is at least the RealMemory Slurm is configured with (MemAvailable in the message)
  spool       free space on SlurmdSpoolDir is at least the minimum
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys

TOOL_TIMEOUT = 20  # seconds for any one tool (a hung nvidia-smi or NFS mount must not hang the check)


# ------------------------------------------------------------------------------------------------ parsing (pure)

_GPU_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: ([^)]*)\)\s*$")


def parse_nvsmi_l(text):
    """``nvidia-smi -L``: [(index, model name)] for each ``GPU N: NAME (UUID: ...)`` line; MIG device lines
    (indented) are not GPUs."""
    out = []
    for line in text.splitlines():
        m = _GPU_LINE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2).strip()))
    return out


def parse_ibstat(text):
    """``ibstat``: {ca: [{"port": n, "state": "Active", "rate": 400.0 or None, "link_layer": ...}]}. Lines
    that are no ``key: value`` are ignored (an ``ibpanic`` line, a partial output: what was read is kept)."""
    cas = {}
    ca = port = None
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^CA '([^']+)'$", line)
        if m and not raw.startswith(("\t", " ")):
            ca, port = m.group(1), None
            cas[ca] = []
            continue
        if ca is None:
            continue
        m = re.match(r"^Port (\d+):$", line)
        if m:
            port = {"port": int(m.group(1)), "state": None, "phys_state": None, "rate": None, "link_layer": None}
            cas[ca].append(port)
            continue
        if port is None or ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        if key == "State":
            port["state"] = value
        elif key == "Physical state":
            port["phys_state"] = value
        elif key == "Rate":
            m = re.match(r"([0-9.]+)", value)
            port["rate"] = float(m.group(1)) if m else None
        elif key == "Link layer":
            port["link_layer"] = value
    return cas


def parse_meminfo(text):
    """/proc/meminfo: {key: kB}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def _fmt_rate(r):
    return ("%g" % r) if r is not None else "?"


# ------------------------------------------------------------------------------------------------ checks (pure)


def result(cid, ok, message, skipped=False):
    return {"id": cid, "ok": bool(ok), "skipped": bool(skipped), "message": message}


def check_gpus(expected, nvsmi_l, device_files_present):
    """GPU count and type. ``nvsmi_l``: the text of ``nvidia-smi -L`` or None when it did not answer;
    ``device_files_present``: {path: bool} for the expected device files."""
    if not expected:
        return [result("gpu-count", True, "no GPUs expected", skipped=True)]
    want = int(expected["count"])
    gtype = (expected.get("type") or "").lower()
    if nvsmi_l is not None:
        gpus = parse_nvsmi_l(nvsmi_l)
        out = [result("gpu-count", len(gpus) == want, "%d/%d (nvidia-smi -L)" % (len(gpus), want))]
        wrong = [name for _, name in gpus if gtype and gtype not in name.lower().replace("-", "").replace(" ", "")]
        if not gpus:
            out.append(result("gpu-type", True, "no GPU listed", skipped=True))
        elif wrong:
            out.append(result("gpu-type", False, "%d GPU(s) are %s, expected %s" % (len(wrong), wrong[0], gtype)))
        else:
            out.append(result("gpu-type", True, "%s" % gpus[0][1]))
        return out
    files = expected.get("files") or []
    missing = [p for p in files if not device_files_present.get(p)]
    seen = len(files) - len(missing)
    msg = "%d/%d" % (seen, want)
    if missing:
        msg += " (missing %s)" % (missing[0] if len(missing) == 1 else "%s and %d more" % (missing[0], len(missing) - 1))
    return [
        result("gpu-count", seen == want and len(files) == want, msg),
        result("gpu-type", True, "no nvidia-smi: type not checked (device files only)", skipped=True),
    ]


def check_gpu_errors(has_nvsmi):
    why = "not checked: no real captured %s to parse against"
    return [
        result("gpu-ecc", True, why % "nvidia-smi ECC output", skipped=True),
        result("gpu-xid", True, why % "kernel Xid line", skipped=True),
    ]


def check_ib(rails, ibstat_text):
    """Each expected rail ``{"hca": name, "rate": gbps or None}`` against ``ibstat``'s text (None: no ibstat)."""
    if not rails:
        return [result("ib-port", True, "no rail HCA expected", skipped=True)]
    if ibstat_text is None:
        return [result("ib-port", False, "ibstat gave no output; %d rail HCA(s) expected" % len(rails))]
    cas = parse_ibstat(ibstat_text)
    down, slow = [], []
    for rail in rails:
        ports = cas.get(rail["hca"])
        if ports is None:
            down.append("%s missing" % rail["hca"])
            continue
        active = [p for p in ports if (p["state"] or "").lower() == "active"]
        if not active:
            p = ports[0] if ports else {}
            down.append("%s port %s %s" % (rail["hca"], p.get("port", "?"), p.get("state") or "no port"))
            continue
        best = max((p["rate"] or 0) for p in active)
        if rail.get("rate") and best < float(rail["rate"]):
            slow.append("%s %s<%s Gb/s" % (rail["hca"], _fmt_rate(best), _fmt_rate(rail["rate"])))
    n = len(rails)
    out = [result("ib-port", not down, ("; ".join(down)) if down else "%d/%d rail ports Active" % (n, n))]
    if not down or slow:
        out.append(result("ib-rate", not slow, "; ".join(slow) if slow else "rates as discovered"))
    return out


def check_mount(path, token_expected, state):
    """``state``: {"exists": bool, "is_dir": bool, "token": text or None, "error": text or None}."""
    if state.get("error"):
        return result("mount", False, "%s: %s" % (path, state["error"]))
    if not state.get("exists"):
        return result("mount", False, "%s missing" % path)
    if not state.get("is_dir"):
        return result("mount", False, "%s is not a directory" % path)
    if token_expected and state.get("token") != token_expected:
        return result("mount", False, "%s not the shared dir (no head token: not mounted?)" % path)
    return result("mount", True, "%s mounted" % path)


def check_memory(real_memory_mb, meminfo):
    if not real_memory_mb:
        return result("memory", True, "no RealMemory expected", skipped=True)
    total = meminfo.get("MemTotal", 0) // 1024
    avail = meminfo.get("MemAvailable", 0) // 1024
    return result("memory", total >= int(real_memory_mb),
                  "MemTotal %d MiB %s RealMemory %d (available %d)" % (
                      total, ">=" if total >= int(real_memory_mb) else "<", int(real_memory_mb), avail))


def check_spool(path, min_free_mb, free_bytes):
    if free_bytes is None:
        return result("spool", False, "%s missing" % path)
    free = free_bytes // (1024 * 1024)
    return result("spool", free >= int(min_free_mb), "%s %d MiB free (min %d)" % (path, free, int(min_free_mb)))


def check_munge(rc, err):
    if rc is None:
        return result("munge", False, "munge/unmunge not found")
    if rc != 0:
        return result("munge", False, "munge -n | unmunge failed: %s" % (err.strip().splitlines() or ["exit %d" % rc])[-1][:80])
    return result("munge", True, "credential encoded and decoded")


# ------------------------------------------------------------------------------------------------ the node


def _run(argv, stdin=None):
    """(exit code, stdout, stderr) of argv, or (None, "", why) when it cannot run or runs too long."""
    try:
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=TOOL_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "", str(exc)
    return p.returncode, p.stdout, p.stderr


def _is_char_device(path):
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _dir_state(path, token_file):
    state = {"exists": os.path.exists(path), "is_dir": os.path.isdir(path), "token": None, "error": None}
    if state["is_dir"] and token_file:
        try:
            with open(os.path.join(path, token_file)) as f:
                state["token"] = f.read().strip()
        except OSError:
            pass
    return state


def run_checks(expected):
    checks = []
    gpus = expected.get("gpus")
    nvsmi_l = None
    if shutil.which("nvidia-smi"):
        rc, out, _ = _run(["nvidia-smi", "-L"])
        nvsmi_l = out if rc == 0 else None
    files = (gpus or {}).get("files") or []
    checks += check_gpus(gpus, nvsmi_l, {p: _is_char_device(p) for p in files})
    if gpus:
        checks += check_gpu_errors(nvsmi_l is not None)
    rails = expected.get("rails") or []
    ibstat_text = None
    if rails and shutil.which("ibstat"):
        rc, out, _ = _run(["ibstat"])
        ibstat_text = out if out.strip() else None  # ibstat exits 255 after a partial output: keep what it read
    checks += check_ib(rails, ibstat_text)
    for m in expected.get("mounts") or []:
        checks.append(check_mount(m["path"], m.get("token"), _dir_state(m["path"], m.get("token_file"))))
    if expected.get("munge", True):
        if shutil.which("munge") and shutil.which("unmunge"):
            rc, out, err = _run(["munge", "-n"])
            if rc == 0:
                rc, _, err = _run(["unmunge"], stdin=out)
            checks.append(check_munge(rc, err))
        else:
            checks.append(check_munge(None, ""))
    try:
        with open("/proc/meminfo") as f:
            meminfo = parse_meminfo(f.read())
    except OSError:
        meminfo = {}
    checks.append(check_memory(expected.get("memory_mb"), meminfo))
    spool = expected.get("spool") or {}
    if spool.get("path"):
        try:
            free = shutil.disk_usage(spool["path"]).free
        except OSError:
            free = None
        checks.append(check_spool(spool["path"], spool.get("min_free_mb", 1024), free))
    return {"host": expected.get("host") or os.uname()[1], "ok": all(c["ok"] for c in checks), "checks": checks}


def main(argv):
    try:
        expected = json.loads(argv[1]) if len(argv) > 1 else json.load(sys.stdin)
        if not isinstance(expected, dict):
            raise ValueError("expected values must be a JSON object")
    except ValueError as exc:
        print(json.dumps({"error": "bad expected values: %s" % exc}))
        return 2
    print(json.dumps(run_checks(expected)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
