"""Operator workflows, one module each. Each is split in two: pure functions from text to objects, and functions
that act on hosts, always through :class:`slurmkit.remote.ClusterSSH` (parallel, one result per host, through
the jump host) -- except ``sync``, which runs rsync locally with its own ssh transport.

- :mod:`slurmkit.ops.keys`: public keys and authorized_keys (``slurmkit keys add|remove|list``).
- :mod:`slurmkit.ops.sshconfig`: an OpenSSH config for the cluster (``slurmkit ssh-config``; pure).
- :mod:`slurmkit.ops.mesh`: the cluster key pair and known_hosts for SSH between nodes (``slurmkit ssh mesh``).
- :mod:`slurmkit.ops.sync`: rsync of a directory to every node through the jump host (``slurmkit sync``).
- the support bundle (``slurmkit support-bundle``), in four modules:
  :mod:`slurmkit.ops.bundle_collect` (what is collected from hosts and from Slurm),
  :mod:`slurmkit.ops.bundle_rules` (the findings, :class:`~slurmkit.ops.bundle_rules.Diagnosis`, and their
  severity rules; pure), :mod:`slurmkit.ops.scrub` (secrets out of every collected text; pure) and
  :mod:`slurmkit.ops.bundle` (orchestration, the .tar.gz).
- :mod:`slurmkit.ops._common`: what they share (:class:`OpsInputError`, the sudo prefix, a user's ~/.ssh).

Import from the module that does the work (``from slurmkit.ops.keys import read_public_key``); only
:class:`OpsInputError`, the error every workflow raises for bad input, is re-exported here.
"""

from slurmkit.ops._common import OpsInputError

__all__ = ["OpsInputError"]
