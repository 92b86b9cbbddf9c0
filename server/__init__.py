"""The service around the graph: settings, transport, command line."""
