"""Content-addressed image store, layer snapshots, registry client, load/save/import, build."""
