"""tasks of the providers app."""
