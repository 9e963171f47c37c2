"""The serving labels: which published versions serve, and under which label.

`stable` serves every client, `canary` (if any) a share of the traffic. A deploy,
a promote and a rollback each turn one `ServingLabels` into the next; where the
record lives is the model store's business (a folder's `labels.json`,
`components.store.folder`) or the cluster's (a ConfigMap, `components.cluster.labels`).
"""

from dataclasses import asdict, dataclass, field

from components.common.errors import InputError


@dataclass(frozen=True)
class ServingLabels:
    """Which versions serve: `stable` for every client, `canary` (if any) for a share."""

    stable: int | None = None
    canary: int | None = None
    canary_percent: int = 0  # the canary's share of traffic where a router splits it (KServe)
    known_versions: tuple[int, ...] = field(default=())  # published versions (for a cluster record)

    def served(self) -> list[int]:
        return sorted({v for v in (self.stable, self.canary) if v is not None})

    def describe(self, router: bool = True) -> str:
        """`stable=1, canary=2 (20% of traffic)`; without a router that splits traffic
        (`router=False`: the local server, TF-Serving alone), what unlabelled requests get instead."""
        if self.stable is None:
            return "nothing labelled yet"
        text = f"stable={self.stable}"
        if not self.canary:
            return text
        if router:
            return text + f", canary={self.canary} ({self.canary_percent}% of traffic)"
        return text + (f", canary={self.canary} (asked for by label; requests without a label get the highest "
                       f"version, {max(self.served())}: the {self.canary_percent}% split is KServe's, on a cluster)")

    def to_json(self) -> dict:
        return {**asdict(self), "known_versions": list(self.known_versions)}

    @classmethod
    def from_json(cls, document: dict) -> "ServingLabels":
        return cls(document.get("stable"), document.get("canary"), int(document.get("canary_percent", 0)),
                   tuple(document.get("known_versions", ())))


def check_canary_percent(canary_percent: int) -> None:
    if not 1 <= canary_percent <= 100:
        raise InputError(f"canary_percent must be between 1 and 100 (100: no canary), got {canary_percent}")


def labels_after_deploy(current: ServingLabels, version: int, canary_percent: int) -> ServingLabels:
    """A full deploy makes `version` stable; a canary keeps stable and adds it as canary.

    With nothing stable yet (a first deploy) the version is stable whatever the share.
    """
    check_canary_percent(canary_percent)
    known = tuple(sorted({*current.known_versions, version}))
    if canary_percent == 100 or current.stable is None:
        return ServingLabels(stable=version, known_versions=known)
    return ServingLabels(current.stable, version, canary_percent, known)


def _check_known(version: int, available: list[int], model_name: str) -> None:
    if version not in available:
        listed = ", ".join(map(str, available)) or "none"
        raise InputError(f"version {version} of {model_name} is not in the model store (versions: {listed})")


def promoted(current: ServingLabels, available: list[int], model_name: str,
             version: int | None = None) -> ServingLabels:
    """`version` (default: the canary) becomes stable for all traffic; no canary remains."""
    target = version if version is not None else current.canary
    if target is None:
        return current  # no canary and no version named: nothing to promote
    _check_known(target, available, model_name)
    return ServingLabels(stable=target, known_versions=current.known_versions)


def rolled_back(current: ServingLabels, available: list[int], model_name: str,
                version: int | None = None) -> ServingLabels:
    """Without `version`: drop the canary (stable keeps all traffic). With it: serve
    that version as stable and drop any canary."""
    if version is None:
        return ServingLabels(stable=current.stable, known_versions=current.known_versions)
    _check_known(version, available, model_name)
    return ServingLabels(stable=version, known_versions=current.known_versions)
