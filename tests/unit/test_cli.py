import pytest

from server.cli import main

pytestmark = pytest.mark.usefixtures("simulated_chat")


def test_chat_streams_a_creative_answer_with_route_and_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chat", "Write a haiku about rivers"]) == 0
    out = capsys.readouterr().out
    assert "→ creative (by heuristic" in out
    assert "rivers" in out.lower()
    assert "first token" in out
    assert "tokens" in out and "in /" in out


def test_chat_shows_the_plan_and_each_step_for_an_analytical_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chat", "--max-steps", "3", "Compare quicksort and mergesort"]) == 0
    out = capsys.readouterr().out
    assert "→ analytical" in out
    assert "Plan\n  1. " in out
    for step in (1, 2, 3):
        assert f"[step {step} of 3]" in out
    assert "## Answer" in out
    assert "over 5 calls" in out


def test_chat_keeps_a_thread_across_messages_in_one_session(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(
        "sys.stdin", io.StringIO("Write a haiku about rivers\nand one about seas\n")
    )
    assert main(["chat", "--route", "creative"]) == 0
    out = capsys.readouterr().out
    assert out.count("→ creative (by forced") == 2


def test_chat_reports_a_failed_run_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALMA_SIMULATED_FAULT_RATE", "1")
    monkeypatch.setenv("ALMA_MODEL_ATTEMPTS", "1")
    monkeypatch.setenv("ALMA_MODEL_IDLE_TIMEOUT", "0.2")
    assert main(["chat", "--router", "heuristic", "Write a haiku about rivers"]) == 1
    assert "error [provider_" in capsys.readouterr().out


def test_a_bad_setting_stops_with_the_variable_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALMA_MODEL_ATTEMPTS", "lots")
    assert main(["chat", "hi"]) == 2
    assert "ALMA_MODEL_ATTEMPTS" in capsys.readouterr().err


def test_a_refined_answer_is_told_apart_from_its_draft(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chat", "--route", "creative", "--refine", "Write a haiku about a cat"]) == 0
    out = capsys.readouterr().out
    answer = out.split("\n\n", 1)[1]
    draft, edited = answer.split("\n\nedited:\n")
    assert draft.startswith("draft:\n")
    # The edited piece stands on its own lines, after the draft, not glued to it.
    assert edited.startswith("**A Cat**\n\n")
    assert draft.removeprefix("draft:\n") in edited


def test_a_greeting_gets_a_short_answer_not_a_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "Hello!"]) == 0
    out = capsys.readouterr().out
    assert "→ creative (by heuristic, confidence 0.90): conversational: a greeting" in out
    assert "Plan" not in out and "over 1 call" in out
