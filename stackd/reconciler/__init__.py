"""Desired state, diff → Plan, apply, health, restart policy, the reconcile loop."""
