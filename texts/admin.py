"""admin of the texts app."""
