"""views of the texts app."""
