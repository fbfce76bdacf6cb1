"""forms of the texts app."""
