"""forms of the providers app."""
