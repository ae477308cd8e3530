"""Golden files for everything rendered from examples/*.yaml.

Re-record after an intended change with:  make golden   (= .venv/bin/python -m tests.golden_files)
then read the diff (`git diff tests/golden`) before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "golden"


def render_example(path: Path) -> dict[str, str]:
    from slurmkit.cluster import load_cluster
    from slurmkit.render import render_cluster

    return render_cluster(load_cluster(path)).files


def record() -> None:
    for ex in EXAMPLES:
        out = GOLDEN / ex.stem
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*"):
            old.unlink()
        for name, text in render_example(ex).items():
            (out / name).write_text(text)
            print(f"recorded {out / name}")


if __name__ == "__main__":
    sys.exit(record())
