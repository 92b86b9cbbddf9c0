"""Run webhooks: which URLs a run may call when it ends (`policy`), and the call (`delivery`)."""
