# Everything a fresh machine needs: `make demo` and `make test` create .venv and install herder.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# make test runs on TEST_JOBS workers (pytest-xdist), one test file or shared resource per unit
# of work, the longest first (tests/conftest.py); TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 2
PARALLEL := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --no-loadscope-reorder)

.PHONY: demo test test-stress lint docs man clean nspawn-setup tmux-setup test-wine bench bench-quick

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "herder is $(VENV)/bin/herder; in another terminal: $(VENV)/bin/herder status -c examples/demo/herder.toml (README: Install puts herder on PATH)"
	$(VENV)/bin/herder up -c examples/demo/herder.toml

test: $(STAMP) nspawn-setup tmux-setup
	@if [ -n "$$HERDER_TEST_WINE" ] && [ "$$HERDER_TEST_WINE" != 0 ]; then HERDER_PY=$(PY) tests/platform/setup-wine.sh >/dev/null \
	  || echo "windows tier: setup failed; its tests will be skipped with the reason"; fi
	$(PY) -m pytest -q $(PARALLEL)

# The whole suite while stress-ng keeps every core busy (issue 13: the suite must pass on a loaded
# machine). stress-ng comes from Debian (installed here when missing, as root); it is stopped by pid
# when pytest ends, however it ends. STRESS_CPUS=N to change the load (default: one worker per core).
STRESS_CPUS ?= $(shell nproc)
test-stress: $(STAMP) nspawn-setup
	@command -v stress-ng >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get -o DPkg::Lock::Timeout=600 install -y -q stress-ng >/dev/null; } \
	  || { echo "test-stress: needs stress-ng (apt-get install stress-ng)"; exit 2; }
	@if [ -n "$$HERDER_TEST_WINE" ] && [ "$$HERDER_TEST_WINE" != 0 ]; then HERDER_PY=$(PY) tests/platform/setup-wine.sh >/dev/null \
	  || echo "windows tier: setup failed; its tests will be skipped with the reason"; fi
	@stress-ng --cpu $(STRESS_CPUS) --cpu-method matrixprod --timeout 2h --quiet & load=$$!; \
	  trap 'kill $$load 2>/dev/null; wait $$load 2>/dev/null' EXIT INT TERM; \
	  echo "test-stress: stress-ng --cpu $(STRESS_CPUS) (pid $$load) while the suite runs"; \
	  $(PY) -m pytest -q $(PARALLEL)

# mypy strict on the whole package and ruff on the package and the tests (config and the
# reasons for the rule set in pyproject.toml). CI (.ci/run) runs it before `make test`.
lint: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check herder tests

# The systemd integration tier (tests/platform) boots a real systemd in systemd-nspawn. As root,
# install systemd-container + mmdebstrap and build the rootfs once (cached in /var/cache/herder-it).
nspawn-setup:
	@if [ "$$(id -u)" = 0 ]; then tests/platform/setup-nspawn.sh >/dev/null || echo "nspawn tier: setup failed; its tests will be skipped"; \
	else echo "nspawn tier: skipped (needs root)"; fi

# `herder top` is tested once through Debian's tmux (tests/e2e/test_top.py): installed here as root.
tmux-setup:
	@tests/e2e/setup-tmux.sh || echo "tmux: not installed ($$?); the tmux test of herder top will be skipped"

# The Windows tier alone: the PSF's Windows CPython + real pywin32 + herder from this tree under Wine's
# SCM (tests/platform/test_windows_*.py, test_install_wine.py). Set-up from nothing: apt wine, hash-pinned
# downloads, a prefix cached in /var/cache/herder-it (~1.4 GB, about a minute); `make test` runs the tier
# whenever Wine is installed, and HERDER_TEST_WINE=1 make test (CI) sets it up first. Needs root.
test-wine: $(STAMP)
	HERDER_PY=$(PY) tests/platform/setup-wine.sh >/dev/null
	HERDER_TEST_WINE=1 $(PY) -m pytest -q tests/platform/test_windows_imports.py tests/platform/test_windows_scm.py \
	  tests/platform/test_windows_install.py tests/platform/test_install_wine.py

docs: $(STAMP)
	$(PY) -m herder.config.docs > docs/config.md
	$(PY) -m herder.core.docs > docs/states.md
	$(PY) -m herder.export.docs > docs/export.md
	$(PY) -m herder.import_.docs > docs/import.md
	$(PY) -m herder.cli.completion man > docs/herder.1

# the man page, generated from the parser (argparse-manpage); `man -l docs/herder.1`
man: $(STAMP)
	$(PY) -m herder.cli.completion man > docs/herder.1

# herder side by side with supervisord, circus, PM2, s6 and runit (docs/performance.md); not part of
# `make test` (its quick mode is: tests/bench). Peers go to bench/.build (their own venv, pm2 via npm),
# s6 and runit via apt-get (root); herder as a wheel, bytecode compiled. Figures: bench/out/results.json.
# A full run takes about 20-25 minutes.
BENCH_PY := bench/.build/venv/bin/python
bench:
	bash bench/setup.sh
	$(BENCH_PY) bench/compare.py $(BENCH_ARGS)
	$(BENCH_PY) bench/report.py bench/out/results.json --doc docs/performance.md --png docs/performance-ratios.png

bench-quick:
	bash bench/setup.sh
	$(BENCH_PY) bench/compare.py --quick --out bench/out/quick.json
	$(BENCH_PY) bench/report.py bench/out/quick.json

clean:
	rm -rf $(VENV) .pytest_cache
