"""The README and docs/ explain the repository on their own, and stay true to the code."""

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def variable_names(field_name: str) -> set[str]:
    """Every environment variable a setting answers to."""
    field = Settings.model_fields[field_name]
    alias = field.validation_alias or field.alias
    if isinstance(alias, AliasChoices):
        return {str(choice).upper() for choice in alias.choices}
    if isinstance(alias, str):
        return {alias.upper()}
    return {f"ALMA_{field_name.upper()}"}


def test_the_readme_is_a_short_front_door() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_stays_in_the_repository_and_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        assert not re.match(r"[a-z]+:", target), f"{page.name} links outside: {target}"
        path = target.split("#", 1)[0]
        if path:
            assert (page.parent / path).resolve().exists(), f"{page.name}: {target} is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_points_outside_the_repository_or_at_issue_numbers(page: Path) -> None:
    text = page.read_text()
    assert "../shared" not in text and "DESIGN.md" not in text
    assert not re.search(r"\bissues? #?\d+", text, re.IGNORECASE)


def test_every_setting_is_documented() -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        names = variable_names(name)
        assert any(variable in documented for variable in names), f"{names} undocumented"


def test_the_configuration_page_names_no_setting_that_does_not_exist() -> None:
    real = {variable for name in Settings.model_fields for variable in variable_names(name)}
    documented = set(
        re.findall(r"\bALMA_[A-Z0-9_]+\b", (ROOT / "docs" / "configuration.md").read_text())
    )
    assert documented - real == set()
