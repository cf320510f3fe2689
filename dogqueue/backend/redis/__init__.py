"""The Redis backend (optional extra `dogqueue[redis]`, on redis-py's asyncio client)."""

from dogqueue.backend.redis.backend import RedisBackend
from dogqueue.backend.redis.log import RedisLog

__all__ = ["RedisBackend", "RedisLog"]
