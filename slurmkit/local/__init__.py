"""The local cluster: real "hosts" on this one Linux machine, each a network + UTS + mount namespace with its sshd.

``cluster`` holds the pure plan (names, addresses, interfaces, files) and the lifecycle (up, down, status);
``netns`` is the only module that runs ``ip``, ``nsenter``, ``mount``, ``mknod``, makes namespaces and mounts, or
starts sshd.
"""

from __future__ import annotations

from slurmkit.errors import SlurmkitError


class LocalClusterError(SlurmkitError):
    """The local cluster cannot be built, inspected or removed (not root, a binary missing, a step failed)."""

    exit_code = 2
