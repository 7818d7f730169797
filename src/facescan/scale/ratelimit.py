"""One request-rate limit for every actor of a run: a named Ray actor holding a token bucket.

API backends (``openai:``, ``gemini:``) are limited by the provider per key, not per process. Each
actor's backend asks the bucket before every network request (cache hits ask nothing) and waits the
delay it is given; the bucket hands out ``rate`` requests per second on average, with bursts of up
to ``burst``. Asking is one small actor call (about a millisecond), against the hundreds of
milliseconds a VLM request takes.
"""

from __future__ import annotations

import functools
import threading
import time

#: The namespace of facescan's named actors.
NAMESPACE = "facescan"


class TokenBucket:
    """Reservations at ``rate`` per second with up to ``burst`` at once; :meth:`reserve` says how long to wait.

    A plain class (the Ray actor is this class behind ``ray.remote``), so it is tested without Ray."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        if not rate or rate <= 0:
            raise ValueError(f"a request rate must be a positive number per second, not {rate!r}")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self.clock = clock
        self.tokens = self.burst
        self.last = clock()

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens now (the balance may go negative); the seconds to wait before using them."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        return max(0.0, -self.tokens / self.rate)


#: The buckets this process started, by name: a Ray actor lives while a handle to it does.
_BUCKETS: dict = {}


def shared_limiter(rate: float, burst: float | None = None, name: str | None = None) -> str:
    """Start the run's bucket as a named actor (it ends with this process, the driver); its name."""
    import ray

    name = name or f"facescan-rate-{ray.get_runtime_context().get_job_id()}"
    TokenBucket(rate, burst)  # a bad rate fails here, before any actor starts
    actor = ray.remote(num_cpus=0)(TokenBucket).options(name=name, namespace=NAMESPACE, get_if_exists=True,
                                                        max_restarts=-1, max_task_retries=-1)
    handle = _BUCKETS[name] = actor.remote(rate, burst)
    ray.get(handle.reserve.remote(0))  # started and reachable
    return name


def limit_requests(backend, limiter, sleep=time.sleep) -> None:
    """Make ``backend.request`` (an API backend's one network call) wait for the bucket first.

    ``limiter`` is the bucket actor's name, or any object with ``reserve(n) -> seconds`` (tests)."""
    if not hasattr(backend, "request"):
        return  # not an API backend: nothing is sent anywhere
    if isinstance(limiter, str):
        import ray

        handle = ray.get_actor(limiter, namespace=NAMESPACE)
        reserve = lambda n: ray.get(handle.reserve.remote(n))  # noqa: E731
    else:
        reserve = limiter.reserve
    request = backend.request
    lock = threading.Lock()

    @functools.wraps(request)
    def limited(*args, **kwargs):
        with lock:  # the backend's request threads ask one at a time: reservations stay in order
            delay = reserve(1.0)
        if delay > 0:
            sleep(delay)
        return request(*args, **kwargs)

    backend.request = limited
