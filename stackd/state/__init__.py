"""The durable record of stacks, containers, networks, allocations (SQLite, WAL)."""
