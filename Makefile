# The two commands README.md promises, on a fresh Debian 12 machine as root:
#   make demo   install everything, then run the local-cluster demo
#   make test   install everything, then run every test (unit and live)
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup test unit live demo golden bench bench-fanout clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

live: setup
	$(PY) -m pytest -q tests/live $(PYTEST_ARGS)

demo: setup
	.venv/bin/slurmkit demo

# Re-record the golden files after an intended rendering change; read `git diff tests/golden` before committing.
golden: setup
	$(PY) -m tests.golden_files

# Every benchmark runs and prints its figures even when an earlier one misses its target (exit 1); the
# bootstrap fan-out (local clusters of up to 64 hosts, ansible-core in /tmp) runs with `make bench-fanout`.
bench: setup
	-$(PY) benchmarks/cli_startup.py
	-$(PY) benchmarks/render_scale.py
	-$(PY) benchmarks/parse_throughput.py
	-$(PY) benchmarks/pairs_rounds.py

bench-fanout: setup
	$(PY) benchmarks/bootstrap_fanout.py --sizes 2,16,64

clean:
	rm -rf .venv .pytest_cache out
