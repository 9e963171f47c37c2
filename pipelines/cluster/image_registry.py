"""Ask an image's registry whether the image's tag is there (the registry HTTP
API, `HEAD /v2/<repository>/manifests/<tag>`), before a package that runs in it
reaches a cluster.

Registries answer anonymous requests with 401 and a `WWW-Authenticate`
challenge; a Bearer challenge is answered with a token from its realm (with the
credentials `docker login` saved in ~/.docker/config.json, when there are
some), a Basic one with those credentials. Credential helpers (`credsStore`,
Docker Desktop's keychain) are not asked: such a registry's private image gets
the one-line warning below instead of a check. Loopback registries are spoken to
over plain HTTP, as Docker does; every other one over HTTPS.

Only a clear "not there" (404) refuses a package: a registry that cannot be
reached from here may still be reachable from the cluster, so that is said in
one warning line and the upload goes on.
"""

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DOCKER_HUB = "registry-1.docker.io"
TIMEOUT_S = 10
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))


@dataclass(frozen=True)
class ImageReference:
    registry: str  # host[:port]
    repository: str
    reference: str  # a tag or a digest

    @property
    def base_url(self) -> str:
        host = self.registry.rsplit(":", 1)[0].strip("[]")
        loopback = host == "localhost" or host.startswith("127.") or host == "::1"
        return f"{'http' if loopback else 'https'}://{self.registry}"


def parse_image(image: str) -> ImageReference:
    """`[registry/]repository[:tag][@digest]`, with Docker's defaults (docker.io, library/, latest)."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name if "/" in name else f"library/{name}"
    last = path.rsplit("/", 1)[-1]
    tag = "latest"
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    return ImageReference(registry, path, digest or tag)


class ImageCheck:
    """The registry's answer: found, missing, or unknown (with why)."""

    def __init__(self, found: bool | None, detail: str = ""):
        self.found, self.detail = found, detail


def saved_credentials(registry: str) -> str | None:
    """`user:password` that `docker login` saved for `registry`, if any (no credential helpers)."""
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    for key in (registry, f"https://{registry}", f"http://{registry}",
                "https://index.docker.io/v1/" if registry == DOCKER_HUB else None):
        auth = auths.get(key, {}).get("auth") if key else None
        if auth:
            return base64.b64decode(auth).decode()
    return None


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', params))


def _authorization(reference: ImageReference, challenge: str) -> str | None:
    scheme, params = _challenge(challenge)
    credentials = saved_credentials(reference.registry)
    basic = f"Basic {base64.b64encode(credentials.encode()).decode()}" if credentials else None
    if scheme == "basic":
        return basic
    if scheme != "bearer" or "realm" not in params:
        return None
    query = {"service": params.get("service", ""),
             "scope": params.get("scope", f"repository:{reference.repository}:pull")}
    request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
    if basic:
        request.add_header("Authorization", basic)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        answer = json.loads(response.read())
    token = answer.get("token") or answer.get("access_token")
    return f"Bearer {token}" if token else None


def _opener(reference: ImageReference) -> urllib.request.OpenerDirector:
    """Loopback registries directly, whatever http_proxy says; others as the environment says."""
    if reference.base_url.startswith("http://"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def check_image(image: str) -> ImageCheck:
    reference = parse_image(image)
    opener = _opener(reference)
    url = f"{reference.base_url}/v2/{reference.repository}/manifests/{reference.reference}"
    authorization = None
    for _attempt in range(2):
        request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with opener.open(request, timeout=TIMEOUT_S):
                return ImageCheck(True)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return ImageCheck(False, f"{reference.registry} answered 404 for {reference.repository}:"
                                         f"{reference.reference}")
            challenge = error.headers.get("WWW-Authenticate")
            if error.code == 401 and challenge and authorization is None:
                try:
                    authorization = _authorization(reference, challenge)
                except (OSError, ValueError) as token_error:
                    return ImageCheck(None, f"no token from {reference.registry} ({token_error})")
                if authorization:
                    continue
            return ImageCheck(None, f"{reference.registry} answered {error.code}"
                                    + (" (docker login first?)" if error.code in (401, 403) else ""))
        except (OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            return ImageCheck(None, f"{reference.registry} cannot be reached ({reason})")
    return ImageCheck(None, f"{reference.registry} refused the credentials")
