"""HTTPModel against a small local server on 127.0.0.1, attacked end to end."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from torch import nn

import advx.model.remote as remote_module
from advx.attacks.hopskipjump import HopSkipJump
from advx.attacks.square import Square
from advx.model import HTTPModel, LabelOnly, RemoteModelError, ScoresOnly
from advx.model.blackbox import InvalidScores
from advx.threat import L2, Linf

G = torch.Generator().manual_seed(0)
W, B = torch.randn(3, 12, generator=G), torch.randn(3, generator=G)


def _local_model() -> nn.Module:
    lin = nn.Linear(12, 3).eval()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(B)
    return lin


class _Handler(BaseHTTPRequestHandler):
    calls: dict = {}

    def log_message(self, *args):  # keep test output clean
        pass

    def _reply(self, code: int, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _raw_body(self):
        body = b'{"scores": [[0.5, 0.25, 0.25]]}' if self.path != "/not-utf8" else b'{"scores": "\xff\xfe"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) + (50 if self.path == "/short" else 0)))
        self.end_headers()
        try:
            if self.path == "/trickle":  # a byte every 50 ms: each read is quick, the whole answer takes 1.6 s
                for b in body:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.wfile.write(body)  # /short: 50 bytes fewer than announced, then the connection closes
        except OSError:  # the client hung up at its deadline
            pass
        self.close_connection = True

    def do_POST(self):  # noqa: N802 -- http.server's name
        n = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(n))
        count = self.calls[self.path] = self.calls.get(self.path, 0) + 1
        x = np.asarray(body.get("inputs", []), dtype=np.float32)
        if self.path == "/flaky" and count <= 2:
            return self._reply(503 if count == 1 else 429, {"error": "busy"}, {"Retry-After": "0"})
        if self.path == "/slow":
            time.sleep(0.5)
        if self.path == "/bad":
            return self._reply(400, {"error": "inputs must be 12 numbers"})
        if self.path == "/busy":  # asks for a wait of three years
            return self._reply(429, {"error": "slow down"}, {"Retry-After": "99999999"})
        if self.path == "/busy-date":
            return self._reply(503, {"error": "later"}, {"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
        if self.path in ("/trickle", "/short", "/not-utf8"):
            return self._raw_body()
        if self.path == "/ragged":
            return self._reply(200, {"scores": [[1.0, 2.0, 3.0]] + [[1.0]] * (len(x) - 1)})
        if self.path == "/nan":
            return self._reply(200, {"scores": [[float("nan"), 0.0, 1.0]] * len(x)})
        if self.path.startswith("/grow"):  # the class count changes after the first answer (per path + query)
            return self._reply(200, {"scores": [[0.0] * (3 if count == 1 else 4)] * len(x)})
        scores = (torch.from_numpy(x).reshape(len(x), -1) @ W.T + B).tolist() if len(x) else []
        if self.path == "/labels":
            return self._reply(200, {"labels": np.argmax(np.asarray(scores), 1).tolist()})
        return self._reply(200, {"scores": scores})


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_scores_round_trip_in_batches(server):
    remote = HTTPModel(server + "/predict", batch_size=4)
    x = np.random.default_rng(0).random((10, 12), dtype=np.float32)
    np.testing.assert_allclose(remote(x), (torch.from_numpy(x) @ W.T + B).numpy(), rtol=1e-5, atol=1e-5)
    assert remote.requests == 3


def test_retries_with_backoff_on_503_and_429_then_succeeds(server):
    remote = HTTPModel(server + "/flaky", retries=2, backoff=0.01)
    out = remote(np.zeros((2, 12), dtype=np.float32))
    assert out.shape == (2, 3) and remote.requests == 3


def test_timeouts_are_retried_then_reported(server):
    remote = HTTPModel(server + "/slow", timeout=0.1, retries=1, backoff=0.0)
    with pytest.raises(RemoteModelError, match="failed after 2 attempts"):
        remote(np.zeros((1, 12)))


def test_client_errors_are_not_retried(server):
    remote = HTTPModel(server + "/bad", retries=3, backoff=0.0)
    with pytest.raises(RemoteModelError, match="HTTP 400.*12 numbers"):
        remote(np.zeros((1, 12)))
    assert remote.requests == 1


def test_rate_limit_spaces_requests(server):
    remote = HTTPModel(server + "/predict", rate_limit=20.0, batch_size=1)
    start = time.monotonic()
    remote(np.zeros((5, 12), dtype=np.float32))
    assert time.monotonic() - start >= 4 / 20 - 0.01  # 5 requests need 4 gaps of 1/20 s


def test_square_on_the_remote_model_equals_square_on_the_local_one(server):
    local = _local_model()
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(1))
    y = local(x).argmax(1).detach()
    api = ScoresOnly(HTTPModel(server + "/predict"), budget=4 * (30 + 2))
    remote = Square(Linf(0.2), queries=30)(api, x, y)
    here = Square(Linf(0.2), queries=30)(local, x, y)
    torch.testing.assert_close(remote.x_adv, here.x_adv)
    assert torch.equal(remote.success, here.success) and api.queries == int(remote.queries.sum())


def test_hopskipjump_on_a_label_only_endpoint(server):
    local = _local_model()
    x = torch.rand(3, 12, generator=torch.Generator().manual_seed(2))
    y = local(x).argmax(1).detach()
    api = LabelOnly(HTTPModel(server + "/labels"), num_classes=3, budget=3 * (60 + 2))
    res = HopSkipJump(L2(100.0), queries=60, init_evals=10)(api, x, y)
    assert res.success.all() and api.queries == int(res.queries.sum())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="url"):
        HTTPModel("ftp://example")
    with pytest.raises(ValueError, match="timeout"):
        HTTPModel("http://127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="rate_limit"):
        HTTPModel("http://127.0.0.1:1", rate_limit=-1)


# ------------------------------------------------------------- hostile servers
def _sleeps(monkeypatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(remote_module.time, "sleep", waits.append)
    return waits


@pytest.mark.parametrize("path", ["/busy", "/busy-date"])
def test_retry_after_is_capped(server, monkeypatch, path):
    waits = _sleeps(monkeypatch)
    remote = HTTPModel(server + path, retries=2, backoff=0.01, max_retry_after=1.5)
    with pytest.raises(RemoteModelError, match=f"{path}: failed after 3 attempts.*HTTP (429|503)"):
        remote(np.zeros((1, 12)))
    assert waits == [1.5, 1.5]  # not 99999999 s, not until 2100


def test_a_trickled_answer_is_cut_at_the_total_timeout(server):
    remote = HTTPModel(server + "/trickle", timeout=0.3, retries=0)
    with pytest.raises(RemoteModelError, match=r"/trickle: failed after 1 attempts.*no complete answer within 0.3 s"):
        remote(np.zeros((1, 12)))


@pytest.mark.parametrize("path, message", [
    ("/short", "IncompleteRead"),
    ("/not-utf8", "not UTF-8"),
    ("/ragged", "not a rectangular array"),
    ("/nan", "non-finite scores"),
])
def test_every_bad_answer_is_a_remote_model_error_naming_the_url(server, monkeypatch, path, message):
    _sleeps(monkeypatch)
    remote = HTTPModel(server + path, retries=1, backoff=0.0)
    with pytest.raises(RemoteModelError, match=f"127.0.0.1:[0-9]+{path}: .*{message}"):
        remote(np.zeros((3, 12)))


def test_a_changing_class_count_is_refused(server):
    remote = HTTPModel(server + "/grow?case=alone")
    assert remote(np.zeros((2, 12))).shape == (2, 3)
    with pytest.raises(RemoteModelError, match="4 classes, earlier answers had 3"):
        remote(np.zeros((2, 12)))


@pytest.mark.parametrize("name, value", [("backoff", math.nan), ("backoff", math.inf), ("backoff", -1.0),
                                         ("timeout", math.inf), ("retries", 2.5), ("max_retry_after", math.nan),
                                         ("batch_size", 0), ("backoff", "1")])
def test_bad_numbers_are_refused_at_construction(name, value):
    with pytest.raises(ValueError, match=name):
        HTTPModel("http://127.0.0.1:1", **{name: value})


def test_black_box_views_refuse_nan_ragged_and_changing_scores():
    with pytest.raises(InvalidScores, match="non-finite scores"):
        ScoresOnly(lambda a: np.full((len(a), 3), np.nan))(torch.zeros(2, 12))
    with pytest.raises(InvalidScores, match="ragged or not numeric"):
        ScoresOnly(lambda a: [[1.0, 2.0], [3.0]])(torch.zeros(2, 12))
    calls = []

    def growing(a):
        calls.append(1)
        return np.zeros((len(a), 2 + len(calls)))

    view = LabelOnly(growing)
    view(torch.zeros(2, 12))
    with pytest.raises(InvalidScores, match="4 classes, earlier calls 3"):
        view(torch.zeros(2, 12))
    with pytest.raises(InvalidScores, match="whole numbers"):
        LabelOnly(lambda a: np.full(len(a), 1.5), num_classes=3)(torch.zeros(2, 12))
    with pytest.raises(InvalidScores, match="num_classes=3"):
        LabelOnly(lambda a: np.zeros((len(a), 4)), num_classes=3)(torch.zeros(2, 12))


@pytest.mark.parametrize("path, error", [("/grow?case=square", "earlier answers had 3"), ("/nan", "non-finite scores")])
def test_square_against_a_misbehaving_server_fails_loudly_instead_of_reporting_success(server, path, error):
    x = torch.rand(2, 12, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1])
    with pytest.raises(RemoteModelError, match=error):
        Square(Linf(0.2), queries=20)(ScoresOnly(HTTPModel(server + path)), x, y)
