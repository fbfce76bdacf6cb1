"""models of the texts app."""
