"""A deployed classifier behind HTTP, as a numpy callable.

:class:`HTTPModel` posts inputs as JSON and reads scores or labels back. Each
request's *total* time is bounded by ``timeout`` (connecting, sending, the
headers and the whole body: a server trickling its answer byte by byte is cut
off at the deadline). Transient failures (connection errors, timeouts, short
bodies, HTTP 429 and 5xx) are retried with exponential backoff; a server's
``Retry-After`` is honoured up to ``max_retry_after`` seconds. Requests are
spaced by a client-side rate limit. Every failure -- a bad status, a body that
is not UTF-8 or not JSON, ragged or non-numeric arrays, non-finite scores, the
wrong number of rows, a class count that changes between answers -- raises
:class:`RemoteModelError` naming the URL; an answer that is not usable scores
(checked by :func:`advx.model.scores.check_scores`, the rule every model output
meets) raises :class:`InvalidRemoteScores`, which is both a RemoteModelError and
an :class:`~advx.model.InvalidScores`. Only the standard library (and numpy,
torch) is used.

Protocol (configurable keys)::

    POST url   {"inputs": [[...], ...]}            # N inputs, nested lists
    200        {"scores": [[...], ...]}            # or "logits" / "probabilities" / "labels"

Put it behind a black-box view to attack it under a budget::

    from advx.model import HTTPModel, ScoresOnly
    model = ScoresOnly(HTTPModel("http://127.0.0.1:8000/predict"), budget=100_000)
    result = Square(Linf(0.1), queries=1000)(model, x, y)
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np

from advx.model.scores import InvalidScores, check_scores

__all__ = ["HTTPModel", "RemoteModelError", "InvalidRemoteScores"]

log = logging.getLogger(__name__)

_OUTPUT_KEYS = ("scores", "logits", "probabilities", "probs", "labels")


class RemoteModelError(RuntimeError):
    """The remote model failed: a bad answer, a client error, or retries exhausted (the message names the URL)."""


class InvalidRemoteScores(RemoteModelError, InvalidScores):
    """The remote model answered something that is not usable scores (both a RemoteModelError and an InvalidScores)."""


class _Transient(Exception):
    """A failure worth another attempt."""


def _number(name: str, value, *, minimum: float = 0.0, open_low: bool = False, none: bool = False,
            whole: bool = False):
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (open_low and value == minimum):
        bound = f"> {minimum:g}" if open_low else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    if whole:
        if not value.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(value)
    return value


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class HTTPModel:
    """JSON-over-HTTP client for a remote classifier; call it on numpy arrays.

    Args:
        url: the endpoint (http or https).
        timeout: seconds one request may take in total (connect, send, headers, body).
        retries: extra attempts after a transient failure (0: fail at once).
        backoff: first wait in seconds between attempts; doubles each retry.
        rate_limit: most requests per second (None: unlimited).
        batch_size: most inputs per request (None: all in one).
        input_key, output_key: JSON field names (output_key None: the first of
            scores, logits, probabilities, probs, labels found in the answer).
        headers: extra HTTP headers (e.g. an API key).
        max_retry_after: the longest wait a server's Retry-After header can impose, seconds.
        max_response_bytes: the largest answer read; a larger one is refused.
    """

    def __init__(self, url: str, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5,
                 rate_limit: float | None = None, batch_size: int | None = None, input_key: str = "inputs",
                 output_key: str | None = None, headers: Mapping[str, str] | None = None,
                 max_retry_after: float = 30.0, max_response_bytes: int = 256 * 2**20):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"url {url!r} has no host")
        self.url = url
        self.timeout = _number("timeout (seconds)", timeout, open_low=True)
        self.retries = _number("retries", retries, whole=True)
        self.backoff = _number("backoff (seconds)", backoff)
        self.rate_limit = _number("rate_limit (requests per second)", rate_limit, open_low=True, none=True)
        self.batch_size = _number("batch_size", batch_size, minimum=1, none=True, whole=True)
        self.max_retry_after = _number("max_retry_after (seconds)", max_retry_after)
        self.max_response_bytes = _number("max_response_bytes", max_response_bytes, minimum=1, whole=True)
        self.input_key, self.output_key = input_key, output_key
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        self.requests = 0  #: HTTP requests sent, retries included
        self.num_classes: int | None = None  #: the class count of the scores answered so far
        self._parts = parts
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        try:
            x = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
        except (TypeError, ValueError) as e:
            raise ValueError(f"x must be a numeric batch (N, ...): {e}") from None
        if x.ndim < 1:
            raise ValueError(f"x must be a batch (N, ...), got shape {x.shape}")
        step = self.batch_size or max(len(x), 1)
        parts = [self._predict(x[i:i + step]) for i in range(0, len(x), step)]
        if not parts:
            return np.zeros((0, self.num_classes) if self.num_classes else (0,))
        try:
            return np.concatenate(parts)
        except ValueError as e:  # labels in one batch, scores in another
            raise RemoteModelError(f"{self.url}: answers of different shapes across batches ({e})") from None

    # ----------------------------------------------------------------- answers
    def _predict(self, x: np.ndarray) -> np.ndarray:
        body = json.dumps({self.input_key: x.tolist()}).encode()
        answer = self._post(body)
        key = self.output_key or next((k for k in _OUTPUT_KEYS if k in answer), None)
        if key is None or key not in answer:
            want = self.output_key or " / ".join(_OUTPUT_KEYS)
            raise RemoteModelError(f"{self.url}: the answer has no {want!r} field (fields: {sorted(answer)[:10]})")
        return self._check(answer[key], key, len(x))

    def _check(self, value, key: str, n: int) -> np.ndarray:
        try:
            out = check_scores(value, n, self.num_classes, where=f"{self.url}: the server", what=key,
                               labels=True if key == "labels" else None,
                               expected=f"earlier answers had {self.num_classes} (did the model behind the URL "
                                        "change?)").numpy()
        except InvalidScores as e:
            raise InvalidRemoteScores(str(e)) from None
        if out.ndim == 1:
            return out.astype(np.int64)
        if self.num_classes is None:
            self.num_classes = int(out.shape[1])
        return out.astype(np.float64)

    # ---------------------------------------------------------------- requests
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
            wait = self.backoff * 2**attempt
            try:
                return self._attempt(body)
            except _Transient as e:
                last, asked = str(e), getattr(e, "retry_after", None)
                if asked is not None:
                    if asked > self.max_retry_after:
                        log.warning("%s: Retry-After %.0f s is over max_retry_after=%g s; waiting %g s",
                                    self.url, asked, self.max_retry_after, self.max_retry_after)
                    wait = max(wait, min(asked, self.max_retry_after))
            except RemoteModelError:
                raise
            except Exception as e:  # noqa: BLE001 -- whatever else goes wrong names the URL
                raise RemoteModelError(f"{self.url}: {type(e).__name__}: {e}") from e
            if attempt < self.retries:
                log.warning("%s: %s; retry %d of %d in %.2f s", self.url, last, attempt + 1, self.retries, wait)
                time.sleep(wait)
        raise RemoteModelError(f"{self.url}: failed after {self.retries + 1} attempts (last: {last})")

    def _connection(self) -> http.client.HTTPConnection:
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        return cls(p.hostname, p.port, timeout=self.timeout)

    def _attempt(self, body: bytes) -> dict:
        """One request, bounded in total by ``timeout``: a watchdog shuts the socket at the deadline."""
        p = self._parts
        path = (p.path or "/") + (f"?{p.query}" if p.query else "")
        deadline = time.monotonic() + self.timeout
        conn = self._connection()
        watchdog = None
        try:
            conn.connect()  # bounded by the socket timeout; then the watchdog bounds the rest
            watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, args=(conn.sock,))
            watchdog.daemon = True
            watchdog.start()
            conn.request("POST", path, body=body, headers=self.headers)
            response = conn.getresponse()
            length = response.length  # None: chunked or until the connection closes
            if length is not None and length > self.max_response_bytes:
                raise RemoteModelError(f"{self.url}: the answer announces {length} bytes, more than "
                                       f"max_response_bytes={self.max_response_bytes}")
            # with a length, read() raises IncompleteRead on a short body; read(n) would return it silently
            data = response.read() if length is not None else response.read(self.max_response_bytes + 1)
            status, reason, headers = response.status, response.reason, response.headers
        except (OSError, http.client.HTTPException) as e:
            if time.monotonic() >= deadline - 1e-3:
                raise _Transient(f"TimeoutError: no complete answer within {self.timeout:g} s") from None
            raise _Transient(f"{type(e).__name__}: {e}") from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
            conn.close()
        if time.monotonic() >= deadline:
            raise _Transient(f"TimeoutError: no complete answer within {self.timeout:g} s")
        if len(data) > self.max_response_bytes:
            raise RemoteModelError(f"{self.url}: the answer is larger than max_response_bytes="
                                   f"{self.max_response_bytes}")
        if status == 429 or status >= 500:
            err = _Transient(f"HTTP {status} {reason}")
            err.retry_after = _retry_after(headers.get("Retry-After"))
            raise err
        if status >= 400:
            detail = data[:200].decode("utf-8", errors="replace")
            raise RemoteModelError(f"{self.url}: HTTP {status} {reason}: {detail}")
        if status != 200:
            raise RemoteModelError(f"{self.url}: HTTP {status} {reason}, expected 200 with a JSON answer")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RemoteModelError(f"{self.url}: the answer is not UTF-8 text ({e.reason} at byte {e.start})") from None
        try:
            answer = json.loads(text)
        except json.JSONDecodeError as e:
            raise RemoteModelError(f"{self.url}: the answer is not JSON ({e})") from None
        if not isinstance(answer, dict):
            raise RemoteModelError(f"{self.url}: expected a JSON object, got {type(answer).__name__}")
        return answer

    def __repr__(self) -> str:
        return f"HTTPModel({self.url!r}, timeout={self.timeout:g}, retries={self.retries}, rate_limit={self.rate_limit})"


def _shut(sock: socket.socket | None) -> None:
    """Unblock a request at its deadline: shut the socket down (a blocked read then returns at once)."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
