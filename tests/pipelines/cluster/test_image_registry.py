"""Asking a registry whether an image tag is there, against a stand-in that speaks
the registry API's token flow (the container suite asks a real registry)."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.cluster.image_registry import DOCKER_HUB, check_image, parse_image


@pytest.mark.parametrize("image, registry, repository, reference", [
    ("ghcr.io/org/kfp-ml-pipelines:0.1.0", "ghcr.io", "org/kfp-ml-pipelines", "0.1.0"),
    ("127.0.0.1:5000/kfp:0.1.0", "127.0.0.1:5000", "kfp", "0.1.0"),
    ("localhost/kfp", "localhost", "kfp", "latest"),
    ("python:3.11", DOCKER_HUB, "library/python", "3.11"),
    ("me/kfp:1", DOCKER_HUB, "me/kfp", "1"),
    ("ghcr.io/org/kfp@sha256:" + "a" * 64, "ghcr.io", "org/kfp", "sha256:" + "a" * 64),
])
def test_references_are_read_with_dockers_defaults(image, registry, repository, reference):
    parsed = parse_image(image)
    assert (parsed.registry, parsed.repository, parsed.reference) == (registry, repository, reference)
    assert parsed.base_url.startswith("http://" if registry.startswith(("127.", "localhost")) else "https://")


class TokenRegistry(BaseHTTPRequestHandler):
    """Manifests answer only with a Bearer token, which the realm gives for saved credentials."""
    tags = {"kfp:0.1.0"}
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # the token realm
        self.requests.append(f"GET {self.path} {self.headers.get('Authorization')}")
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"me:secret").decode():
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"token": "t0k"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.requests.append(f"HEAD {self.path} {self.headers.get('Authorization')}")
        if self.headers.get("Authorization") != "Bearer t0k":
            realm = f"http://127.0.0.1:{self.server.server_port}/token"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="stand-in",scope="x"')
            self.end_headers()
            return
        repository, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        self.send_response(200 if f"{repository}:{tag}" in self.tags else 404)
        self.end_headers()


@pytest.fixture
def token_registry(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_port}"
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {address: {"auth": base64.b64encode(b"me:secret").decode()}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    TokenRegistry.requests = []
    yield address
    server.shutdown()


def test_a_pushed_tag_is_found_through_the_token_flow_with_saved_credentials(token_registry):
    answer = check_image(f"{token_registry}/kfp:0.1.0")
    assert answer.found is True, answer.detail
    assert TokenRegistry.requests[0].startswith("HEAD /v2/kfp/manifests/0.1.0 None")
    assert TokenRegistry.requests[1].startswith("GET /token?service=stand-in&scope=x Basic ")
    assert TokenRegistry.requests[2] == "HEAD /v2/kfp/manifests/0.1.0 Bearer t0k"


def test_a_missing_tag_is_a_clear_no(token_registry):
    answer = check_image(f"{token_registry}/kfp:9.9.9")
    assert answer.found is False and "answered 404 for kfp:9.9.9" in answer.detail


def test_without_credentials_the_answer_is_unknown_not_missing(token_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    answer = check_image(f"{token_registry}/kfp:0.1.0")
    assert answer.found is None and "no token" in answer.detail


def test_an_unreachable_registry_is_unknown(stalled_port):
    from pipelines.cluster import image_registry

    image_registry.TIMEOUT_S, before = 0.5, image_registry.TIMEOUT_S
    try:
        answer = check_image(f"127.0.0.1:{stalled_port}/kfp:0.1.0")
    finally:
        image_registry.TIMEOUT_S = before
    assert answer.found is None and "cannot be reached" in answer.detail
