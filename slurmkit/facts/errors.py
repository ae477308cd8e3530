"""The error a parser raises on output that a working tool could not have printed (cut short or garbled)."""

from __future__ import annotations

from slurmkit.errors import SlurmkitError


class FactsParseError(SlurmkitError):
    """A command's output is truncated or garbled: which command, which line (1-based, of the output as
    captured; 0 when the output as a whole is at fault, e.g. it ends too early) and what is wrong.
    ``host`` is filled in by discovery, which knows where the output came from."""

    def __init__(self, command: str, line_no: int, message: str, host: str | None = None):
        self.command, self.line_no, self.message, self.host = command, line_no, message, host
        super().__init__(str(self))

    def on_host(self, host: str) -> FactsParseError:
        return FactsParseError(self.command, self.line_no, self.message, host)

    @property
    def detail(self) -> str:
        """The error without the host: ``command `ibstat`, line 7: ...``."""
        line = f", line {self.line_no}" if self.line_no else ", end of output"
        return f"command `{self.command}`{line}: {self.message}"

    def __str__(self) -> str:
        return f"{self.host}: {self.detail}" if self.host else self.detail
