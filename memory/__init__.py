"""Conversation memory: LangGraph checkpointers and their upkeep."""
