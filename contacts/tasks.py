"""tasks of the contacts app."""
