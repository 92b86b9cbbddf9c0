"""`alma chat --review-plan`: the plan is shown, the answer read from stdin, the run resumed."""

import io

import pytest

from server.cli import main

pytestmark = pytest.mark.usefixtures("simulated_chat")


def chat(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["chat", "--review-plan", "--router", "heuristic", *args])


def test_an_edited_plan_is_analysed_step_by_step(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = "e\nCount the swaps\nWeigh memory use\n\n"
    assert chat(monkeypatch, stdin, "--max-steps", "3", "Compare quicksort and mergesort") == 0
    out = capsys.readouterr().out
    assert "Review the plan before it is analysed:\n  1. Pin down what is being asked" in out
    assert "[step 1 of 2] Count the swaps" in out and "[step 2 of 2] Weigh memory use" in out
    answer = out.split("## Answer", 1)[1]
    assert "**Count the swaps**" in answer and "Pin down" not in answer


def test_a_refused_edit_is_asked_again_then_approved(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three steps where two are allowed: the graph refuses, and the plan is asked again.
    stdin = "x\ne\none\ntwo\nthree\n\na\n"
    assert chat(monkeypatch, stdin, "--max-steps", "2", "Compare quicksort and mergesort") == 0
    out = capsys.readouterr().out
    assert "answer a, e or r" in out
    assert "(the last answer was refused: an edited plan may have at most 2 steps)" in out
    assert out.count("Review the plan") == 2
    assert "[step 2 of 2] Draw a conclusion with its caveats" in out
    assert "## Answer" in out


def test_a_rejected_plan_gets_a_short_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert chat(monkeypatch, "r\n", "Compare quicksort and mergesort") == 0
    out = capsys.readouterr().out
    assert "The plan was rejected, so no analysis was made." in out
    assert "[step 1" not in out and "## Answer" not in out


def test_the_end_of_input_rejects_the_plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert chat(monkeypatch, "", "Compare quicksort and mergesort") == 0
    assert "(end of input: the plan is rejected)" in capsys.readouterr().out
