"""Every option of `kfp-ml schedule create` is reachable: `make schedule` passes it, or
docs/cluster.md names it in the `kfp-ml` command it documents."""

import argparse
import re

from conftest import REPO

from pipelines.cli import schedule


def schedule_create_options() -> set[str]:
    parser = argparse.ArgumentParser()
    schedule.add_arguments(parser)
    actions = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    create = actions.choices["create"]
    return {option for action in create._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"}


def make_schedule_recipe() -> str:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    return re.search(r"^schedule:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)


def test_every_schedule_option_is_passed_by_make_or_documented_as_kfp_ml():
    recipe = make_schedule_recipe()
    cluster = (REPO / "docs" / "cluster.md").read_text(encoding="utf-8")
    documented = " ".join(re.findall(r"`kfp-ml schedule create[^`]*`", cluster))
    unreachable = {option for option in schedule_create_options()
                   if not re.search(rf"{option}\b", recipe) and not re.search(rf"{option}\b", documented)}
    assert unreachable == set(), f"options of schedule create neither make nor the docs reach: {unreachable}"


def test_the_options_are_read_from_the_parser():
    assert {"--cron", "--catchup", "--start", "--end", "--max-concurrency"} <= schedule_create_options()
