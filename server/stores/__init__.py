"""Where the service keeps what it knows: Redis, or process memory.

The threads' event logs, run and thread records, owners, and the wrappers of
the checkpointer.
"""
