"""Node functions and what they need: router, models, simulated model, token budget."""
