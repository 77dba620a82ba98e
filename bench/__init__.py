"""hubbub's benchmarks: hubbub and its baselines, driven side by side in one run.

``python -m bench`` (or ``make bench``) runs every scenario against every server
and writes the report to ``docs/benchmarks/``; see ``bench/README.md``.
"""
