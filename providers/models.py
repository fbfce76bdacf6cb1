"""models of the providers app."""
