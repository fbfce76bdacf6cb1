"""tasks of the texts app."""
