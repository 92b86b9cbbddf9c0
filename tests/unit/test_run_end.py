"""A run's end, read from its terminal event as one typed value."""

from server.engine.events import RunEnd, lifecycle, numbered, run_end, run_started
from server.engine.run import status_of


def test_a_root_end_reads_as_how_the_run_ended() -> None:
    failed = lifecycle("failed", run_id="r-1", error="provider down", code="provider_error")
    assert run_end(numbered(failed, 7)) == RunEnd(
        run_id="r-1", ending="failed", code="provider_error", error="provider down"
    )
    assert run_started(lifecycle("running", run_id="r-1")) == "r-1"
    assert run_end(lifecycle("running", run_id="r-1")) is None


def test_a_subgraphs_end_is_not_the_runs() -> None:
    inner = lifecycle("completed", run_id="r-1")
    inner["params"]["namespace"] = ["analytical:1"]
    assert run_end(inner) is None and run_started(inner) is None


def test_a_cancelled_run_is_interrupted_not_an_error() -> None:
    cancelled = run_end(lifecycle("failed", run_id="r-1", error="stopped", code="cancelled"))
    failed = run_end(lifecycle("failed", run_id="r-2", error="x", code="internal"))
    done = run_end(lifecycle("completed", run_id="r-3"))
    assert cancelled is not None and failed is not None and done is not None
    assert (cancelled.errored, failed.errored, done.errored) == (False, True, False)
    assert [status_of(end) for end in (cancelled, failed, done)] == [
        "interrupted",
        "error",
        "success",
    ]
