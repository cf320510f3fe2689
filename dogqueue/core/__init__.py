"""The pure core: events, commands, decide, evolve, retry policy and projections.

Nothing here does I/O, reads a clock or draws a random number: time and ids arrive as
arguments, so the same events always fold to the same state.
"""
