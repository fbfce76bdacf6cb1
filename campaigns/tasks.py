"""tasks of the campaigns app."""
