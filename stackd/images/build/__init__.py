"""Dockerfile builds: parsing, the step cache, and the builder that runs steps."""
