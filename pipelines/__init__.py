"""Pipeline definitions (one module per pipeline) and the command line."""
