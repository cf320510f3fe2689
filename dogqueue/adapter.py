"""`dogqueue.adapter.QueueAdapter`, where it was imported from before the client package
(its home is `dogqueue.client.adapter`)."""

from dogqueue.client.adapter import QueueAdapter

__all__ = ["QueueAdapter"]
