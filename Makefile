# elfvm - top-level Makefile.
#
#   make run        set up, then `elfvm layout fixtures/bin/hello_pie`
#                   (another program: make run FIXTURE=fixtures/bin/vars)
#   make test       set up, then run the whole pytest suite (PYTEST_ARGS=...)
#   make fixtures   rebuild every fixtures/bin program from fixtures/src (gcc -m32)
#   make bench      set up, then run every benchmarks/*.py script
#   make clean      remove caches and the set-up stamp (keeps .venv, fixtures/bin)
#   make distclean  clean, and remove .venv too
#
# Set-up (scripts/setup.sh) creates .venv, or uses $VIRTUAL_ENV when one is
# active, installs elfvm with its test extras, makes sure gcc -m32 works and
# rebuilds fixtures whose sources changed.  A second run does almost nothing.

ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := $(CURDIR)/.venv
endif
PY      := $(ENV_DIR)/bin/python
ELFVM   := $(ENV_DIR)/bin/elfvm

FIXTURE     ?= fixtures/bin/hello_pie
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test fixtures bench clean distclean

help:
	@sed -n 's/^#   make /  make /p' Makefile

setup:
	@bash scripts/setup.sh

run: setup
	$(ELFVM) layout $(FIXTURE)

test: setup
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

fixtures:
	@$(MAKE) --no-print-directory -C fixtures -B all \
	    || { echo "make fixtures: needs gcc -m32 (sudo apt-get install gcc-multilib)" >&2; exit 1; }

bench: setup
	@set -e; found=; \
	for f in benchmarks/*.py; do \
	    [ -f "$$f" ] || continue; found=1; \
	    echo "== $$f"; $(PY) "$$f"; \
	done; \
	[ -n "$$found" ] || echo "no benchmarks/*.py scripts"

clean:
	rm -rf .pytest_cache .hypothesis build *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f $(ENV_DIR)/.elfvm-setup

distclean: clean
	rm -rf .venv
