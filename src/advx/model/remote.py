"""A deployed classifier behind HTTP, as a numpy callable.

:class:`HTTPModel` posts inputs as JSON and reads scores or labels back, with a
timeout per request, retries with exponential backoff on transient failures
(connection errors, timeouts, HTTP 429 and 5xx; ``Retry-After`` is honoured),
and a client-side rate limit. Only the standard library is used (urllib).

Protocol (configurable keys)::

    POST url   {"inputs": [[...], ...]}            # N inputs, nested lists
    200        {"scores": [[...], ...]}            # or "logits" / "probabilities" / "labels"

Put it behind a black-box view to attack it under a budget::

    from advx.model import ScoresOnly
    model = ScoresOnly(HTTPModel("http://127.0.0.1:8000/predict"), budget=100_000)
    result = Square(Linf(0.1), queries=1000)(model, x, y)
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

import numpy as np

__all__ = ["HTTPModel", "RemoteModelError"]

log = logging.getLogger(__name__)

_OUTPUT_KEYS = ("scores", "logits", "probabilities", "probs", "labels")


class RemoteModelError(RuntimeError):
    """The remote model failed: a bad answer, a client error, or retries exhausted."""


class HTTPModel:
    """JSON-over-HTTP client for a remote classifier; call it on numpy arrays.

    Args:
        url: the endpoint (http or https).
        timeout: seconds to wait for one request.
        retries: extra attempts after a transient failure (0: fail at once).
        backoff: first wait in seconds between attempts; doubles each retry.
        rate_limit: most requests per second (None: unlimited).
        batch_size: most inputs per request (None: all in one).
        input_key, output_key: JSON field names (output_key None: the first of
            scores, logits, probabilities, probs, labels found in the answer).
        headers: extra HTTP headers (e.g. an API key).
    """

    def __init__(self, url: str, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5,
                 rate_limit: float | None = None, batch_size: int | None = None, input_key: str = "inputs",
                 output_key: str | None = None, headers: Mapping[str, str] | None = None):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if int(retries) < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 requests per second or None, got {rate_limit!r}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size!r}")
        self.url, self.timeout, self.retries, self.backoff = url, float(timeout), int(retries), float(backoff)
        self.rate_limit = None if rate_limit is None else float(rate_limit)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.input_key, self.output_key = input_key, output_key
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        self.requests = 0  #: HTTP requests sent, retries included
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"x must be a batch (N, ...), got shape {x.shape}")
        step = self.batch_size or max(len(x), 1)
        parts = [self._predict(x[i:i + step]) for i in range(0, len(x), step)]
        return np.concatenate(parts) if parts else np.zeros((0,))

    # ----------------------------------------------------------------- internals
    def _predict(self, x: np.ndarray) -> np.ndarray:
        body = json.dumps({self.input_key: x.tolist()}).encode()
        answer = self._post(body)
        key = self.output_key or next((k for k in _OUTPUT_KEYS if k in answer), None)
        if key is None or key not in answer:
            want = self.output_key or " / ".join(_OUTPUT_KEYS)
            raise RemoteModelError(f"{self.url}: the answer has no {want!r} field (fields: {sorted(answer)})")
        out = np.asarray(answer[key])
        if out.shape[:1] != (len(x),):
            raise RemoteModelError(f"{self.url}: sent {len(x)} inputs, got {key} of shape {out.shape}")
        return out

    def _wait_for_slot(self) -> None:
        if self.rate_limit is None:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate_limit
        if slot > now:
            time.sleep(slot - now)

    def _post(self, body: bytes) -> dict:
        last = None
        for attempt in range(self.retries + 1):
            self._wait_for_slot()
            self.requests += 1
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            wait = self.backoff * 2**attempt
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 -- http(s) only
                    answer = json.loads(response.read().decode())
                if not isinstance(answer, dict):
                    raise RemoteModelError(f"{self.url}: expected a JSON object, got {type(answer).__name__}")
                return answer
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:200]
                if e.code != 429 and e.code < 500:
                    raise RemoteModelError(f"{self.url}: HTTP {e.code} {e.reason}: {detail}") from None
                last = f"HTTP {e.code} {e.reason}"
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except json.JSONDecodeError as e:
                raise RemoteModelError(f"{self.url}: the answer is not JSON ({e})") from None
            if attempt < self.retries:
                log.warning("%s: %s; retry %d of %d in %.2f s", self.url, last, attempt + 1, self.retries, wait)
                time.sleep(wait)
        raise RemoteModelError(f"{self.url}: failed after {self.retries + 1} attempts (last: {last})")

    def __repr__(self) -> str:
        return f"HTTPModel({self.url!r}, timeout={self.timeout:g}, retries={self.retries}, rate_limit={self.rate_limit})"
