"""Stack files → the immutable Stack model (read, interpolate, merge, normalise, validate)."""
