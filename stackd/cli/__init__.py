"""The stackd command: parses arguments, calls the library or the daemon, prints."""
