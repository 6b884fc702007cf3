# `make demo` sets everything up and runs the main job; `make test` sets everything up and runs every test.
.PHONY: setup demo test test-fast

setup:
	./scripts/setup.sh

demo: setup
	MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 .venv/bin/visionblocks bench \
		--family attention --shape 128,28,28 --repeats 5 --min-time 0.5 --out bench_out --plot bench_out/bench.png

test: setup
	.venv/bin/python -m pytest -n 2 -q
	./scripts/setup_integration.sh
	.venv-integration/bin/python -m pytest -n 2 -q -p no:cacheprovider tests/integration tests/weights/integration

test-fast: setup
	.venv/bin/python -m pytest -n 2 -q -m "not slow"
