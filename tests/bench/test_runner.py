"""The runner's bookkeeping, without servers."""

from bench.runner import median_of


def test_one_run_is_kept_as_it_is() -> None:
    run = {"msgs_per_s": 10.0, "error": None}
    assert median_of([run]) is run


def test_repeated_runs_report_the_median_of_each_number_and_keep_every_run() -> None:
    runs = [
        {"msgs_per_s": 100.0, "p99_ms": 9.0, "label": "a"},
        {"msgs_per_s": 300.0, "p99_ms": 1.0, "label": "b"},
        {"msgs_per_s": 200.0, "p99_ms": 5.0, "label": "c"},
    ]
    merged = median_of(runs)
    assert merged["msgs_per_s"] == 200.0
    assert merged["p99_ms"] == 5.0
    assert merged["label"] == "c"
    assert merged["runs"] == runs
