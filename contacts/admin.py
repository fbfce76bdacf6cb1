"""admin of the contacts app."""
