"""forms of the contacts app."""
