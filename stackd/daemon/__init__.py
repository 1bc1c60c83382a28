"""The HTTP API on a unix socket, the event bus, the host of the reconcile loop."""
