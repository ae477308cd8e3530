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


class NodeCommandsFailed(LocalClusterError):
    """A command run on several nodes at once failed on some of them: every one's failure, by host, none hidden."""

    def __init__(self, what: str, failures: dict, done: dict | None = None):
        self.what = what
        self.failures = dict(failures)  # host -> CommandError
        self.done = dict(done or {})  # what succeeded (host -> result), e.g. holders started, to clean up
        lines = [f"{what} failed on {len(self.failures)} host(s): {', '.join(self.failures)}"]
        for host, err in self.failures.items():
            lines.append(f"  {host}: " + str(err).replace("\n", "\n    "))
        super().__init__("\n".join(lines))
