"""`slurmkit exporter` on the local namespace cluster, scraped by a real Prometheus (Debian's `prometheus`, started
here on a loopback port): a node `slurmkit health` drained (its shared dir hidden by a tmpfs) is reported drained,
with its failed mount check, through Prometheus' HTTP API."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_query(port: int, promql: str, timeout: float = 60) -> list[dict]:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            found = query(port, promql)
            if found:
                return found
        except OSError as exc:  # Prometheus still starting
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"no answer to {promql} within {timeout} s (last error: {last})")


def test_prometheus_scrapes_the_drained_node_and_its_failed_check(tmp_path_factory):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    work = tmp_path_factory.mktemp("exporter")
    with local_cluster(work, computes=2, prefix="ex") as lc:
        lc.bootstrap()
        good, bad = f"{lc.name}-node-1", f"{lc.name}-node-2"
        shared = lc.spec["shared_dir"]
        lc.on(bad, f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(shared)}")
        procs = []
        try:
            p = lc.cli("health", "--json", check=False)
            report = json.loads(p.stdout)
            assert p.returncode == 1 and report["failed"] == [bad], p.stdout + p.stderr
            eport, pport = free_port(), free_port()
            exp = subprocess.Popen([sys.executable, "-m", "slurmkit", "-c", str(lc.file), "exporter", "--port",
                                    str(eport)], cwd=lc.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
            procs.append(exp)
            conf = work / "prometheus.yml"
            conf.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: slurmkit\n"
                            f"    static_configs:\n      - targets: ['127.0.0.1:{eport}']\n")
            prom = subprocess.Popen(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={work / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{pport}"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            procs.append(prom)
            up = wait_query(pport, 'up{job="slurmkit"} == 1')
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{eport}"
            state = wait_query(pport, f'slurmkit_node_state{{node="{bad}"}}')
            assert [s["metric"]["state"] for s in state] == ["drained"], state
            assert [s["metric"]["state"] for s in wait_query(pport, f'slurmkit_node_state{{node="{good}"}}')] != [
                "drained"]
            ours = wait_query(pport, f'slurmkit_node_drained_by_slurmkit{{node="{bad}"}}')
            assert ours[0]["metric"]["reason_kind"] == "health"
            failed = wait_query(pport, f'slurmkit_health_check_ok{{node="{bad}"}} == 0')
            assert [f["metric"]["check"] for f in failed] == ["mount"], failed
            assert not query(pport, f'slurmkit_health_check_ok{{node="{good}"}} == 0')
            assert query(pport, 'slurmkit_nodes{state="drained"}')[0]["value"][1] == "1"
            assert all(s["value"][1] == "1" for s in wait_query(pport, "slurmkit_scrape_ok"))
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            lc.on(bad, f"umount {shlex.quote(shared)}", check=False)
