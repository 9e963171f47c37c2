"""Connecting to the Pipelines API: KFP_HOST, the token, a health check first, and API
errors turned into one line."""


import contextlib
import json
import os
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from components.common.errors import InputError, TransientError

PROBE_TIMEOUT_S = 15
# Every Pipelines API call: seconds to connect, and to wait for each read of the answer.
# A read that times out is not re-sent, so a stalled API fails in API_READ_TIMEOUT_S.
API_CONNECT_TIMEOUT_S = 5
API_READ_TIMEOUT_S = 20
REACH_HINT = ("is the port-forward running? e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80` "
              "with KFP_HOST=http://localhost:8080 (KFP_HOST is the URL of the Pipelines UI or API, "
              "scheme and port included)")


@dataclass
class Connection:
    client: "kfp.Client"  # noqa: F821 - imported lazily: kfp.Client is slow to import
    host: str
    namespace: str | None


def connect() -> Connection:
    """A `kfp.Client` for KFP_HOST, checked with one healthz request first.

    The check turns the usual mistakes into one line that says which: an
    unreachable host, a host that is not the Pipelines API, a rejected token.
    """
    host = os.environ.get("KFP_HOST", "").strip().rstrip("/")
    if not host:
        raise InputError("KFP_HOST is not set: export KFP_HOST=<Pipelines API URL>")
    if not host.startswith(("http://", "https://")):
        raise InputError(f"KFP_HOST '{host}' must start with http:// or https://")
    namespace = os.environ.get("KFP_NAMESPACE", "").strip() or None
    token, token_source = _bearer_token()
    healthz = _probe(host, token, token_source)
    if healthz.get("multi_user") and not namespace:
        raise InputError(f"KFP_HOST {host} is a multi-user Kubeflow: "
                         "set KFP_NAMESPACE to your profile namespace")

    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    auth: dict[str, object] = {}
    if os.environ.get("KFP_TOKEN"):
        auth["existing_token"] = token
    elif os.environ.get("KF_PIPELINES_SA_TOKEN_PATH"):
        auth["credentials"] = ServiceAccountTokenVolumeCredentials(
            os.environ["KF_PIPELINES_SA_TOKEN_PATH"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP >= 2.0.0-beta.2"
        client = kfp.Client(host=host, namespace=namespace or "kubeflow", **auth)
    _bound_api_calls(client)
    return Connection(client=client, host=host, namespace=namespace)


def _bound_api_calls(client) -> None:
    """Give every call of `client` a timeout, and no silent re-send of a request that timed out.

    kfp.Client passes no `_request_timeout` to kfp_server_api, whose REST client then
    waits forever on an API that accepted the connection and stalled; its urllib3 pool
    would also re-send a GET whose read timed out (3 times by default). The client's
    services share one `ApiClient` (kfp.Client keeps no public handle on it); its REST
    client's `request` accepts `_request_timeout=(connect, read)`, which is given here
    to every call that sets none.
    """
    import urllib3

    rest = client._run_api.api_client.rest_client
    # Connection failures may be tried again (nothing reached the server); reads not.
    rest.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(total=2, connect=2, read=0, redirect=5)
    send = rest.request

    def request(*args, _request_timeout=None, **kwargs):
        return send(*args, _request_timeout=_request_timeout or (API_CONNECT_TIMEOUT_S, API_READ_TIMEOUT_S),
                    **kwargs)

    rest.request = request


def _bearer_token() -> tuple[str | None, str]:
    """The token to send and where it came from (for error messages)."""
    if os.environ.get("KFP_TOKEN"):
        return os.environ["KFP_TOKEN"].strip(), "KFP_TOKEN"
    path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH")
    if path:
        try:
            return Path(path).read_text().strip(), f"KF_PIPELINES_SA_TOKEN_PATH ({path})"
        except OSError as error:
            raise InputError(f"KF_PIPELINES_SA_TOKEN_PATH: cannot read token file {path}: "
                             f"{error.strerror}") from error
    return None, "no token (set KFP_TOKEN or KF_PIPELINES_SA_TOKEN_PATH)"


def _probe(host: str, token: str | None, token_source: str) -> dict:
    """GET /apis/v2beta1/healthz and explain any failure in one line."""
    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            body = response.read()
            final_url = response.geturl()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise InputError(f"KFP_HOST {host} rejected the token from {token_source} "
                             f"(HTTP {error.code} {error.reason})") from error
        raise InputError(f"KFP_HOST {host} did not answer as a Kubeflow Pipelines API: "
                         f"HTTP {error.code} {error.reason} on /apis/v2beta1/healthz") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(f"KFP_HOST {host} is unreachable: {reason}; {REACH_HINT}") from error
    try:
        healthz = json.loads(body)
        if not isinstance(healthz, dict):
            raise ValueError("not an object")
    except ValueError as error:
        # Kubeflow's gateway answers an unauthenticated request with a login page.
        where = f" (redirected to {final_url})" if final_url.rstrip("/") != request.full_url else ""
        raise InputError(f"KFP_HOST {host} answered with a web page, not the Pipelines API{where}: "
                         f"the token from {token_source} is missing or rejected") from error
    return healthz


@contextlib.contextmanager
def api_call(what: str) -> Iterator[None]:
    """Turn an API error into one line that says what was being done."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        yield
    except ApiException as error:
        raise InputError(f"{what}: Pipelines API answered HTTP {error.status} "
                         f"{api_message(error)}") from error
    except urllib3.exceptions.HTTPError as error:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, urllib3.exceptions.ReadTimeoutError) or "timed out" in str(reason):
            raise TransientError(f"{what}: the Pipelines API at KFP_HOST {_host()} did not answer within "
                                 f"{API_READ_TIMEOUT_S}s (connect {API_CONNECT_TIMEOUT_S}s); "
                                 "try again later or check the cluster") from error
        raise TransientError(f"{what}: the Pipelines API at KFP_HOST {_host()} is unreachable: {reason}; "
                             f"{REACH_HINT}") from error


def _host() -> str:
    return os.environ.get("KFP_HOST", "").strip().rstrip("/") or "(unset)"


def api_message(error) -> str:
    try:
        body = json.loads(error.body)
        message = body.get("message") or body.get("error") or error.reason
    except (TypeError, ValueError, AttributeError):
        message = error.reason
    return str(message).splitlines()[0] if message else ""


def equals_filter(key: str, value: str) -> str:
    """A KFP list filter: `key` equals `value` (the JSON form kfp.Client uses)."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


