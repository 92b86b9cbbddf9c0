"""Evaluations of the manager: routing, memory across turns, analytical structure, budgets."""
