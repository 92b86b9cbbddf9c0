"""What the service tells its operators: logs, metrics, traces, per-run usage and cost."""
