"""views of the providers app."""
