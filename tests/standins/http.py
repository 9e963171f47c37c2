"""What the HTTP stand-ins share: a threaded server on 127.0.0.1, request bodies checked
against the official generated client models, and a self-signed TLS context.

There is no cluster in the tests. The stand-ins (kfp_api, kube_api, training) answer, on
127.0.0.1 only, exactly the endpoints the project calls, keep the objects in memory, and check
every request body against the official generated client models (`kfp_server_api.models`,
`kubernetes.client.models`): the body must deserialize into the model and hold no field the
model does not know. They are stand-ins, not emulators: they model only the behaviour the
project relies on (names, versions, resourceVersion/generation, rollout status).
"""

import datetime as dt
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SERVE_TIMEOUT_S = 10


# --------------------------------------------------------------------------- model checks

def unknown_fields(data, type_name: str, models, path: str = "") -> list[str]:
    """JSON keys in `data` that the OpenAPI model `type_name` does not declare."""
    if type_name.startswith("list[") and isinstance(data, list):
        inner = type_name[5:-1]
        return [p for i, item in enumerate(data) for p in unknown_fields(item, inner, models, f"{path}[{i}]")]
    if type_name.startswith("dict(") and isinstance(data, dict):
        inner = type_name[type_name.index(",") + 1:-1].strip()
        return [p for key, value in data.items()
                for p in unknown_fields(value, inner, models, f"{path}.{key}")]
    klass = getattr(models, type_name, None)
    if klass is None or not getattr(klass, "openapi_types", None) or not isinstance(data, dict):
        return []
    attribute = {json_key: name for name, json_key in klass.attribute_map.items()}
    problems = []
    for key, value in data.items():
        if key not in attribute:
            problems.append(f"{path}.{key}")
        else:
            problems += unknown_fields(value, klass.openapi_types[attribute[key]], models, f"{path}.{key}")
    return problems


class _Response:
    def __init__(self, data):
        self.data = json.dumps(data)


def check_against_model(data: dict, type_name: str, api_client, models) -> object:
    """Deserialize `data` into the model (raises on bad types/enums) and refuse unknown fields."""
    problems = unknown_fields(data, type_name, models)
    if problems:
        raise AssertionError(f"fields unknown to {type_name}: {problems}")
    return api_client.deserialize(_Response(data), type_name)


# --------------------------------------------------------------------------- the server

class StandIn:
    """A threaded HTTP(S) server on 127.0.0.1 that routes to `self.routes`."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.errors: list[str] = []  # assertion failures raised inside handlers
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            timeout = SERVE_TIMEOUT_S

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _dispatch(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                with standin.lock:
                    standin.requests.append((self.command, url.path))
                    try:
                        status, payload, content_type = standin.handle(
                            self.command, url.path, parse_qs(url.query), self.headers, body)
                    except AssertionError as error:
                        standin.errors.append(f"{self.command} {url.path}: {error}")
                        status, payload, content_type = 400, {"message": str(error)}, "application/json"
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer is its headers alone
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = _dispatch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=SERVE_TIMEOUT_S)

    def handle(self, method, path, query, headers, body):
        raise NotImplementedError


def json_body(body: bytes) -> dict:
    return json.loads(body) if body else {}




def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the CA file a client must trust."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver stand-in")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
