"""stackd — Compose-format stacks on its own container runtime, image store and networks."""

__version__ = "0.1.0"
