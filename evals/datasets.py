"""The evaluation datasets: JSONL files in the repository, as LangSmith examples."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langsmith import Client
from langsmith.schemas import Example

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
_NAMESPACE = uuid.UUID("6d1f0a52-6a0e-4c55-9d0b-3a0f1f2e7a10")


@dataclass(frozen=True)
class Dataset:
    """One dataset file: its name in LangSmith and its examples."""

    suite: str
    name: str
    description: str
    rows: list[dict[str, Any]]

    def examples(self) -> list[Example]:
        """The rows as examples with stable ids (the same on every run)."""
        dataset_id = uuid.uuid5(_NAMESPACE, self.name)
        created = datetime(2026, 1, 1, tzinfo=UTC)
        return [
            Example(
                id=uuid.uuid5(dataset_id, str(index)),
                dataset_id=dataset_id,
                inputs=row["inputs"],
                outputs=row.get("outputs"),
                metadata=row.get("metadata") or {},
                created_at=created,
            )
            for index, row in enumerate(self.rows)
        ]


_DESCRIPTIONS = {
    "routing": "Requests labelled creative or analytical: clear, mixed, ambiguous, other "
    "languages, prompt injections that try to force a route, and conversational turns.",
    "memory": "Conversations whose last turn depends on a fact from an earlier one.",
    "analytical": "Requests whose answer must have a plan, each step, and a synthesis.",
    "crossthread": "A fact told in one thread, asked for in a fresh thread of the same "
    "owner, again after the owner deleted their memories, and by another owner.",
}


def load(suite: str) -> Dataset:
    """Read `datasets/<suite>.jsonl`."""
    path = DATASETS_DIR / f"{suite}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return Dataset(suite=suite, name=f"alma-{suite}", description=_DESCRIPTIONS[suite], rows=rows)


def upload(client: Client, dataset: Dataset) -> str:
    """Create the dataset in LangSmith, or add the examples it lacks; its name."""
    if client.has_dataset(dataset_name=dataset.name):
        remote = client.read_dataset(dataset_name=dataset.name)
        known = {example.id for example in client.list_examples(dataset_id=remote.id)}
    else:
        remote = client.create_dataset(dataset.name, description=dataset.description)
        known = set()
    missing = [e for e in dataset.examples() if uuid.uuid5(remote.id, str(e.id)) not in known]
    if missing:
        client.create_examples(
            dataset_id=remote.id,
            examples=[
                {"id": uuid.uuid5(remote.id, str(e.id)), "inputs": e.inputs,
                 "outputs": e.outputs, "metadata": e.metadata}
                for e in missing
            ],
        )  # fmt: skip
    return dataset.name
