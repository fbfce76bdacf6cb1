"""services of the texts app."""
