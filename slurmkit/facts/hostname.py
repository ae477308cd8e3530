"""The host's own name, as Slurm's daemons find themselves: the kernel's hostname cut at its first dot.

slurmd looks up its NodeName by it and slurmctld its SlurmctldHost (Slurm's ``gethostname_short``; slurmctld
also accepts the full name), so it is what slurm.conf must call the host, whatever the cluster file calls it.
"""

from __future__ import annotations

from slurmkit.facts._text import clean

# /proc/sys/kernel/hostname is what gethostname(2) returns (the UTS namespace's name); `hostname` where /proc
# is not mounted. Prints nothing when neither works.
HOSTNAME_COMMAND = "cat /proc/sys/kernel/hostname 2>/dev/null || hostname 2>/dev/null || true"


def parse_hostname(text: str) -> str | None:
    """The short hostname in the command's output (``sc-node-1.example.org`` -> ``sc-node-1``); None when it
    printed nothing."""
    for line in clean(text).split("\n"):
        name = line.strip()
        if name:
            return name.split(".", 1)[0] or None
    return None
