"""The package's one root exception type and its children.

Only the CLI turns these into messages and exit codes (see slurmkit.cli).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SlurmkitError(Exception):
    """Root of every error slurmkit raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem found in an input, with the path of the offending key (``nodes[1].gpus.count``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(SlurmkitError):
    """An input file (cluster file, inventory, fleet) is invalid. Holds every problem found, not only the first."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


@dataclass
class CommandError(SlurmkitError):
    """A command failed, locally or on a host. Carries what a person needs to act on it."""

    command: str
    exit_code_: int | None
    stdout: str = ""
    stderr: str = ""
    host: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @staticmethod
    def tail(text: str, lines: int = 12) -> str:
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def __str__(self) -> str:
        where = f"on {self.host}: " if self.host else ""
        code = "no exit code" if self.exit_code_ is None else f"exit code {self.exit_code_}"
        msg = f"{where}`{self.command}` failed with {code}"
        err = self.tail(self.stderr) or self.tail(self.stdout)
        if err:
            msg += "\n" + "\n".join("    " + line for line in err.splitlines())
        return msg
