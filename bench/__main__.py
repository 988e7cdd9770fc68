"""``python -m bench``: queueing, procrastinate and PgQueuer side by side (see bench/harness.py)."""

from bench.harness import main

main()
