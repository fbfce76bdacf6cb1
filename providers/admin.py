"""admin of the providers app."""
