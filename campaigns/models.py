"""models of the campaigns app."""
