"""forms of the campaigns app."""
