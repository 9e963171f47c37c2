"""The command line's assembly: the verbs' names, where options may go, and what each verb imports."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, free_port
from standins.registry import published_copy

from pipelines import registry
from pipelines.cli import main as cli
from pipelines.cli import run as run_verb


def test_the_run_verb_knows_every_registered_pipeline():
    assert sorted(run_verb.PIPELINE_NAMES) == sorted(spec.name for spec in registry.PIPELINES)


@pytest.mark.parametrize("argv", [
    ["run", "sp500", "--verbose", "threshold=0.5", "epochs=2"],
    ["run", "sp500", "threshold=0.5", "--verbose", "epochs=2"],
    ["run", "sp500", "threshold=0.5", "epochs=2", "--verbose"],
    ["--verbose", "run", "sp500", "threshold=0.5", "epochs=2"],
])
def test_verbose_is_accepted_anywhere(argv):
    args = cli.parse_args(cli.build_parser(), argv)
    assert args.verbose is True and args.params == ["threshold=0.5", "epochs=2"]


def test_an_unknown_option_is_still_refused(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(cli.build_parser(), ["run", "sp500", "--nope", "threshold=0.5"])
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


def modules_after(*argv: str, cwd: Path = REPO, **env: str) -> set[str]:
    """The heavy libraries a verb imported, run as a user runs it (its exit code not minded)."""
    probe = ("import sys\nfrom pipelines.cli.main import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(' '.join(m for m in ('tensorflow', 'kfp', 'kubernetes') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                            "HOME": os.environ["HOME"], **env})
    return set(done.stdout.split())


def test_predict_over_rest_imports_neither_tensorflow_nor_kfp():
    assert modules_after("predict", "--model", "crypto", "--rest", "--port", str(free_port())) == set()


@pytest.mark.parametrize("argv", [["upload", "sp500"], ["schedule", "list"], ["promote", "sp500"]])
def test_cluster_and_lifecycle_verbs_do_not_import_tensorflow(argv, image_registry, tmp_path):
    """`upload` goes through the image check (to the loopback registry) up to the connection,
    which fails for want of KFP_HOST."""
    (tmp_path / "compiled").mkdir()
    (tmp_path / "compiled" / "sp500.yaml").write_text(
        published_copy((REPO / "compiled" / "sp500.yaml").read_text(), image_registry))
    assert "tensorflow" not in modules_after(*argv, cwd=tmp_path, **image_registry.project_images())


def test_serve_refuses_an_unknown_model_before_importing_tensorflow(tmp_path):
    (tmp_path / "model_store" / "sp500").mkdir(parents=True)
    assert "tensorflow" not in modules_after("serve", "--model-base-path", str(tmp_path / "model_store"),
                                             "--model-name", "sp50")


def test_every_verb_is_a_module_of_the_one_table():
    for name, verb in cli.VERBS.items():
        assert verb.HELP and verb.__doc__ and callable(verb.add_arguments) and callable(verb.run), name


@pytest.mark.parametrize("verb, options", [
    ("compile", ["--output-dir"]),
    ("run", ["--verbose", "--gpu", "--runner", "--container-user", "--compiled-dir"]),
    ("upload", ["--gpu", "--compiled-dir"]),
    ("schedule", ["create", "list", "pause", "resume", "delete"]),
    ("serve", ["--model-base-path", "--model-name", "--host", "--grpc-port", "--rest-port", "--poll-seconds",
               "--wait"]),
    ("predict", ["--model", "--grpc", "--rest", "--label", "--date", "--index"]),
    ("promote", ["--version", "--model-base-path", "--cluster", "--namespace"]),
    ("rollback", ["--to", "--model-base-path", "--cluster", "--namespace"]),
])
def test_each_verbs_help_lists_its_options(verb, options, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([verb, "--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0
    assert [option for option in options if option not in shown] == []


def test_the_main_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    assert [verb for verb in cli.VERBS if f"    {verb} " not in shown] == []
