"""Failed logins counted per user name and client address, and per user name from anywhere.

Over either limit (by default 5 and 50 in 15 minutes), logins answer 429 without looking at
the password. In memory: a restart forgets them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimiter:
    """Failed logins in a sliding window, in memory (a restart forgets them)."""

    def __init__(
        self,
        *,
        limit: int = 5,
        user_limit: int = 50,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.user_limit = user_limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, user: str, client: str) -> list[tuple[tuple[str, str], int]]:
        name = user.strip().lower()[:200]
        return [((name, client), self.limit), ((name, "*"), self.user_limit)]

    def retry_after(self, user: str, client: str) -> int | None:
        """Seconds until ``user`` may try again from ``client``; None when allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(user, client):
                times = self._failures.get(key)
                if times is None:
                    continue
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(wait, times[0] + self.window - now)
        return math.ceil(wait) if wait > 0 else None

    def failure(self, user: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key, _ in self._keys(user, client):
                times = self._failures.setdefault(key, deque())
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:  # bounded memory under a name spray
                self._failures.popitem(last=False)

    def success(self, user: str, client: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(user, client)[0][0], None)
