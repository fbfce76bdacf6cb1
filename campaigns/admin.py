"""admin of the campaigns app."""
