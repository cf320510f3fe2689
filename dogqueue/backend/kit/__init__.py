"""The storage kit: what every backend shares (SQL files, row and time codecs, the
in-memory working set, group commit). A backend imports the kit, never a sibling."""
