# swarmboot: the README's commands. Each one works on a fresh Debian 12 machine, as root.
#   make demo   set everything up, build a small image, serve it, boot virtual nodes from it
#   make demo-disk  the same image installed to one node's virtual disk, then booted from it
#   make test   set everything up and run the whole test suite (make test-full: with the long variants)

PYTHON  ?= /usr/bin/python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup host-packages completion test test-full test-unit lint demo demo-disk bench bench-disk bench-nfs fuzz clean

setup: host-packages $(STAMP) completion

host-packages:
	@scripts/setup-host.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# bash and zsh tab completion of `swarmboot` (argcomplete)
completion: $(STAMP)
	@scripts/install-completion.sh $(VENV)

# `make test` is CI's run (kept under ~40 minutes on 2 cores); `make test-full` adds the variants
# marked `full` (little new coverage, much time: more boots, larger swarms).
test: setup
	scripts/run-tests.sh -m "not full" $(PYTEST_ARGS)

test-full: setup
	scripts/run-tests.sh $(PYTEST_ARGS)

test-unit: setup
	scripts/run-tests.sh tests/unit $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# >= 10^6 inputs per fuzz target (tests/fuzz/targets.py) under atheris; FUZZ_RUNS to change it.
# Long (about an hour on 2 cores): run it under the heavy lock at a quiet moment.
FUZZ_RUNS ?= 1000000
fuzz: setup
	$(VENV)/bin/pip install -q -e '.[dev,fuzz]'
	$(PY) scripts/fuzz.py --runs $(FUZZ_RUNS)

demo: setup
	$(PY) -m lab.demo

# one node installed to its virtual disk, then booted from it (with and without the server)
demo-disk: setup
	$(PY) -m lab.demo_disk

bench: setup
	$(PY) bench/pack.py
	$(PY) bench/server.py
	$(PY) bench/swarm.py --nodes 4,8,16,32 --runs 2 --json bench/results/swarm.json --plot bench/results/swarm.png
	$(PY) bench/swarm_model.py --from bench/results/swarm.json --fit 4,8,16,32 --json bench/results/swarm_model.json
	$(PY) bench/power.py --bmcs 500 --runs 2 --json bench/results/power.json
	$(PY) bench/nfs_root.py --nodes 4,8,16 --json bench/results/nfs_root.json

# the nfs root against BitTorrent: time and the server's bytes for N = 4, 8, 16 (docs/agent.md)
bench-nfs: setup
	$(PY) bench/nfs_root.py --nodes 4,8,16

# the disk install's image write against a plain unsquashfs onto the same disk, side by side
bench-disk: setup
	$(PY) bench/disk_write.py

clean:
	rm -rf $(VENV) .cache build *.egg-info fuzz-artifacts
