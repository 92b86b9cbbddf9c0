"""`alma eval` offline: LangSmith's notices about local experiments are kept quiet, nothing else."""

from __future__ import annotations

import sys
import warnings

import pytest

from evals.runner import _offline


def test_offline_hides_only_langsmiths_notices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(UserWarning) as shown, _offline(upload=False):
        # As LangSmith's `aevaluate` does for a local experiment…
        sys.stdout.write("Starting evaluation of experiment: alma-routing-heuristic-1234\n")
        warnings.warn("'upload_runs' parameter is in beta.", UserWarning, stacklevel=1)
        # …and as anything else might, meanwhile.
        sys.stdout.write("something the target printed\n")
        warnings.warn("a warning that matters", UserWarning, stacklevel=1)
    assert capsys.readouterr().out == "something the target printed\n"
    assert [str(warning.message) for warning in shown] == ["a warning that matters"]
