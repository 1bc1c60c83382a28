"""Simulation tier: the reconciler on a fake host (tests/sim/simfakes.py), on trio's clock."""
