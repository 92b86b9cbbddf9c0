"""LangGraph's server API as ALMA speaks it, the other wire format.

The assistant, the stream modes, and the thread and its state as the API shows them.
"""
