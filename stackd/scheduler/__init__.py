"""Pure ordering and placement: dependency graph, waves, replica slots, nodes."""
