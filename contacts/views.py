"""views of the contacts app."""
