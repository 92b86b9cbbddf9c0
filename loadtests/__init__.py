"""Load tests and the OpenAI-compatible simulator endpoint they drive."""
