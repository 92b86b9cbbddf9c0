"""Graphs: state schemas and graph builders — which steps exist and how they connect."""
