"""The web console (`stackd ui`): stacks, containers, events, images, networks and
volumes in a browser, live, with a few confirmed actions — a client of the daemon's
API like the CLI (docs/ui.md)."""
