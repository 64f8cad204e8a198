"""Modal screens: confirmation, Hub search, help, prune."""
