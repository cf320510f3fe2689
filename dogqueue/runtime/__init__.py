"""The asyncio runtime pieces behind `dogqueue.Worker`."""
