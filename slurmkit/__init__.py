"""slurmkit: from SSH-reachable GPU machines to an accepted Slurm cluster."""

__version__ = "0.1.0"
