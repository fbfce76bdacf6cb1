"""views of the campaigns app."""
