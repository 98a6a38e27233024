"""Benchmarks of the pipeline against the naive single-process loop: `python -m bench.run --help`."""
