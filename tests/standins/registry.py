"""An image registry's manifest endpoint on 127.0.0.1, for the image check that `upload`, `run`
with KFP_HOST and `schedule create` make (pipelines/cluster/image_registry.py).

`HEAD /v2/<repository>/manifests/<tag>` answers 200 for the tags pushed to it and 404 for
every other one, without authentication, as Debian's docker-registry does on loopback (the
container suite asks that real registry; this stand-in keeps `make test` off the network).
The token flow is tested against its own stand-in (tests/pipelines/cluster/test_image_registry.py).
"""

from standins.http import StandIn


class RegistryStandIn(StandIn):
    def __init__(self):
        super().__init__()
        self.address = f"127.0.0.1:{self.port}"
        self.tags: set[str] = set()  # "repository:tag", the repository without the address

    def push(self, image: str) -> None:
        """Have `image` (`<address>/<repository>:<tag>`)."""
        self.tags.add(image.removeprefix(f"{self.address}/"))

    def project_images(self) -> dict[str, str]:
        """IMAGE and IMAGE_GPU in this registry, with this version's tags pushed."""
        from components.common.images import VERSION

        images = {"IMAGE": f"{self.address}/kfp-ml-pipelines", "IMAGE_GPU": f"{self.address}/kfp-ml-pipelines-gpu"}
        for repository in images.values():
            self.push(f"{repository}:{VERSION}")
        return images

    def handle(self, method, path, query, headers, body):
        repository, _, tag = path.removeprefix("/v2/").partition("/manifests/")
        if method == "HEAD" and tag:
            return 200 if f"{repository}:{tag}" in self.tags else 404, b"", "application/json"
        return 404, {"errors": [{"code": "UNSUPPORTED", "message": f"{method} {path}"}]}, "application/json"


def published_copy(package_text: str, registry: RegistryStandIn) -> str:
    """A compiled package's text with each step's image moved into `registry`
    (`<any registry>/<path>/<name>:<tag>` becomes `<address>/<name>:<tag>`), as if it had been
    compiled with IMAGE in that registry; the tags are pushed there."""
    import re

    def moved(match: re.Match) -> str:
        image = f"{registry.address}/{match[1]}"
        registry.push(image)
        return f"image: {image}"

    return re.sub(r"image: \S+/([^/\s]+:\S+)", moved, package_text)
