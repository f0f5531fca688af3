"""HTTPModel against a small local server on 127.0.0.1, attacked end to end."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from torch import nn

from advx.attacks.hopskipjump import HopSkipJump
from advx.attacks.square import Square
from advx.blackbox import LabelOnly, ScoresOnly
from advx.remote import HTTPModel, RemoteModelError
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
