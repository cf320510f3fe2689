"""Kept for `web/*_browser.py` only, until the browsers move into the backends (that
move deletes it): the time codec lives in `dogqueue.backend.kit.rows`."""

from dogqueue.backend.kit.rows import from_micros, to_micros

__all__ = ["from_micros", "to_micros"]
