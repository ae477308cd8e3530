"""Build hook; the metadata is in pyproject.toml. The wheel carries the repository's top-level templates/ and
playbooks/ as slurmkit/templates and slurmkit/playbooks (found by slurmkit.resources.data_dir)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("templates", "playbooks")


class BuildPyWithData(build_py):
    """build_py that also copies the data folders into the built package (not for editable installs, which read
    the checkout's folders)."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        for name in DATA_DIRS:
            target = Path(self.build_lib) / "slurmkit" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
