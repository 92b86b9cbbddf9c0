"""What keeps the service safe from its callers.

Keys, rate limits, request validation, and how a refusal is said.
"""
