"""What the cluster commands' tests share: a toy pipeline, compiled as `make compile` does, and the KFP API stand-in.

There is no cluster here: `standins.kfp_api.KfpStandIn` serves the v2beta1
endpoints the project calls on 127.0.0.1 and checks every request body
against the kfp-server-api models. The code under test is the real
`kfp.Client` path, configured only through the environment as a user does.
The toy is compiled, as after `make image publish`, for an IMAGE in the loopback
registry stand-in (standins.registry), which the image check asks.
"""

import pytest
from kfp import compiler, dsl
from standins.kfp_api import KfpStandIn

from components.common.images import cpu_component
from pipelines.cluster import runs


def echo(text: str) -> str:
    return text


def toy_pipeline(name: str):
    echo_step = cpu_component(echo)  # the project's image (IMAGE now), which the cluster commands insist on

    @dsl.pipeline(name=name, description="a toy with one parameter of each type")
    def toy(threshold: float = 0.7, epochs: int = 3, tickers: str = "sp500", flag: bool = False,
            weights: list = [1, 2]):  # noqa: B006 - KFP reads the default from the signature
        echo_step(text=tickers)
    return toy


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, image_registry):
    """compiled/toy.yaml and compiled/toy-gpu.yaml, as `make compile` writes them with IMAGE in the
    loopback registry."""
    directory = tmp_path_factory.mktemp("work") / "compiled"
    directory.mkdir()
    with pytest.MonkeyPatch.context() as settings:
        for name, repository in image_registry.project_images().items():
            settings.setenv(name, repository)
        for name in ("toy", "toy-gpu"):
            compiler.Compiler().compile(toy_pipeline(name), str(directory / f"{name}.yaml"))
    return directory


@pytest.fixture
def env(monkeypatch, tmp_path, compiled, published_images):
    """A clean KFP environment: no token, no namespace, no kfp context file; IMAGE in the loopback
    registry, as the toy was compiled."""
    import kfp

    for name in ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH", "KFP_NAMESPACE", "KFP_EXPERIMENT",
                 "KF_PIPELINES_UI_ENDPOINT", "WAIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.chdir(compiled.parent)  # packages are found in ./compiled, as `make compile` writes them
    monkeypatch.setattr(runs, "WAIT_POLL_S", 0)
    return monkeypatch


@pytest.fixture
def kfp_api(env):
    with KfpStandIn() as standin:
        env.setenv("KFP_HOST", standin.url)
        yield standin
        assert not standin.errors, standin.errors
