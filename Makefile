# `make demo` sets everything up and runs the main job; `make test` sets everything up and runs every test.
.PHONY: setup demo test test-fast

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/visionblocks list

test: setup
	.venv/bin/python -m pytest -n 2 -q

test-fast: setup
	.venv/bin/python -m pytest -n 2 -q -m "not slow"
