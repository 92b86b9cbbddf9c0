"""A fresh machine installs exactly what the suite was last green with, as the README says."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "README.md opens with no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt line is not a pin: {line!r}"
            found[canonicalize_name(name)] = Version(version)
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        listed += [item for item in extra if not item.startswith("alma[")]
    return [Requirement(item) for item in listed]


def test_the_readme_opens_with_a_run_command_and_a_test_command_both_pinned() -> None:
    run, test = readme_commands()[:2]
    for command in (run, test):
        assert "python3 -m venv .venv" in command
        assert "pip install -c constraints.txt -e " in command
    # Running needs the service alone; the test tools come with the second command.
    assert "[dev]" not in run and "alma serve" in run
    assert "'.[dev]'" in test and test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_word_for_word_in_a_new_virtualenv() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    test = readme_commands()[1]
    assert test in script.splitlines()
    assert script.index("rm -rf .venv") < script.index(test)


def test_every_dependency_is_pinned_within_its_declared_range() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside {requirement}"
        )


def test_the_pinned_hypothesis_still_serves_schemathesis() -> None:
    # hypothesis-jsonschema 0.23.1 calls an internal that hypothesis 6.170.10 changed.
    assert pins()["hypothesis"] < Version("6.170.10")
