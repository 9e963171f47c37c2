"""crypto's validation end to end: the default generated data deploys with its statistics and schema;
the same data without Cardano (asset 3) then stops at the validation step with one line naming it."""

import re

import pandas as pd
import pytest
from conftest import run_cli

from pipelines.crypto import data

pytestmark = pytest.mark.e2e


def test_a_run_without_an_asset_is_stopped_naming_the_asset(tmp_path):
    first = run_cli("run", "crypto", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    version = tmp_path / "model_store" / "crypto" / "1"
    assert (version / "statistics.json").is_file() and (version / "schema.json").is_file()

    folder = tmp_path / "without-cardano"
    folder.mkdir()
    data.generate(folder, "2021-04-11", "2021-05-11", seed=2022)  # what source=generated makes by default
    train = pd.read_csv(folder / "train.csv")
    train[train["Asset_ID"] != 3].to_csv(folder / "train.csv", index=False)
    before = sorted(p for p in (tmp_path / "model_store").rglob("*"))
    second = run_cli("run", "crypto", f"source={folder}", cwd=tmp_path)
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    last_line = second.stderr.strip().splitlines()[-1]
    assert last_line == ("error: step 'validate-data' failed: data validation: Asset_ID: 3 (Cardano) is missing, "
                         "the serving model's training data had it")
    terminal = re.sub(r"\x1b\[[0-9;]*m", "", second.stdout + second.stderr)
    assert "Traceback" not in terminal and "Executing task 'train-model'" not in terminal
    assert sorted(p for p in (tmp_path / "model_store").rglob("*")) == before
