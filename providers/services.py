"""services of the providers app."""
