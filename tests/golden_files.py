"""Golden files for everything rendered from examples/*.yaml.

``tests/golden/<example>/``: as `slurmkit render` gives it with no facts (each example's pin, else 22.05);
``tests/golden/slurm-<release>/<example>/``: rendered for each supported Slurm release
(slurmkit.slurm_versions.SUPPORTED; 22.05's equal the plain ones, which the tests check instead).

Re-record after an intended change with:  make golden   (= .venv/bin/python -m tests.golden_files)
then read the diff (`git diff tests/golden`) before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden"


def render_example(path: Path, version: str | None = None) -> dict[str, str]:
    from slurmkit.cluster import load_cluster
    from slurmkit.render import render_cluster

    return render_cluster(load_cluster(path), version=version).files


def versions() -> tuple[str, ...]:
    """The releases with golden files of their own (22.05's are the plain ones)."""
    from slurmkit.slurm_versions import DEFAULT, SUPPORTED

    return tuple(v for v in SUPPORTED if v != DEFAULT)


def golden_dir(example: Path, version: str | None = None) -> Path:
    return GOLDEN / example.stem if version is None else GOLDEN / f"slurm-{version}" / example.stem


def record() -> None:
    for ex in EXAMPLES:
        for version in (None, *versions()):
            out = golden_dir(ex, version)
            out.mkdir(parents=True, exist_ok=True)
            for old in out.glob("*"):
                old.unlink()
            for name, text in render_example(ex, version).items():
                (out / name).write_text(text)
                print(f"recorded {out / name}")


if __name__ == "__main__":
    sys.exit(record())
