"""The compiled manager graph that `langgraph.json` points at (`langgraph dev`, Studio).

This is the one module that reads configuration at import: LangGraph's server imports
a compiled graph, and brings its own checkpointer, so none is attached here.
"""

import logging

from graphs.manager import build_manager_graph
from nodes.models import ModelProvider, ModelSettings

_provider = ModelProvider.from_settings(ModelSettings())
# A simulated provider is worth a warning: its answers are not real model output.
logging.getLogger("alma").log(
    logging.WARNING if _provider.is_simulated else logging.INFO,
    "model provider: %s",
    _provider.description,
)

graph = build_manager_graph(provider=_provider)
