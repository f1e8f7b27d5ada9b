"""Reconnect storms: a lean resuming client and the driver of a lost-gateway run."""
