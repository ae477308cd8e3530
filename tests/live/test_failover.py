"""Backup controllers: 3 heads share StateSaveLocation; the primary slurmctld dies during a running job, a backup
takes over within SlurmctldTimeout, `sinfo` answers, and the job finishes."""

from __future__ import annotations

import time

import pytest

from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live
TIMEOUT = 6  # SlurmctldTimeout for this test (the rendered default is 120 s)


def test_backup_controller_takes_over_during_a_job(tmp_path):
    with local_cluster(tmp_path, computes=2, heads=3, prefix="fo") as lc:
        lc.edit(lambda s: s.update(slurm_conf={"SlurmctldTimeout": TIMEOUT}))
        code, out = lc.bootstrap()
        heads = [f"{lc.name}-head-{i}" for i in (1, 2, 3)]
        assert [n for n in out["hosts"] if out["hosts"][n]["role"] == "head"] == heads
        ping = lc.head("scontrol ping").stdout
        assert f"Slurmctld(primary) at {heads[0]} is UP" in ping
        # 22.05 numbers the backups: Slurmctld(backup1), Slurmctld(backup2).
        assert f"Slurmctld(backup1) at {heads[1]} is UP" in ping and f"Slurmctld(backup2) at {heads[2]} is UP" in ping

        shared = lc.spec["shared_dir"]
        job = lc.head(f"sbatch --parsable -N2 -o {shared}/fo-%j.out --wrap 'srun sleep 12; echo done'").stdout.strip()
        lc.wait_for(f"squeue -h -j {job} -o %T", lambda s: s.strip() == "RUNNING", "job running")

        lc.head("kill $(cat /run/slurmctld.pid)")
        t0 = time.monotonic()
        # Ask from a compute node: the head we killed no longer answers, a backup must.
        node = f"{lc.name}-node-1"
        deadline = t0 + TIMEOUT * 3 + 30
        while time.monotonic() < deadline:
            r = lc.on(node, "scontrol ping", check=False).stdout
            if f"Slurmctld(backup1) at {heads[1]} is UP" in r and f"Slurmctld(primary) at {heads[0]} is DOWN" in r:
                break
            time.sleep(1)
        took = time.monotonic() - t0
        assert lc.on(node, "sinfo -h -o %D").returncode == 0
        # The backup reports itself in control once it has taken over.
        lc.wait_for(f"ssh {node} scontrol show job {job}", lambda s: "JobState=COMPLETED" in s, "job completed",
                    timeout=60)
        assert lc.head(f"cat {shared}/fo-{job}.out").stdout.strip() == "done"
        assert took < TIMEOUT * 3 + 30, f"takeover took {took:.1f} s"
