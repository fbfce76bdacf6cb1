"""services of the campaigns app."""
