"""Git sources as the desired state: watch, apply revisions, status, rollback."""
