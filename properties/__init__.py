"""The property-based verification suite (see properties/README.md)."""
