"""Which kind of model a version folder holds, as the servers decide it.

TF-Serving loads a folder with `saved_model.pb`; KServe's LightGBM server (and
the local server, `components.serving.servables`) the single LightGBM model file
it finds there, whatever its name. The gate scores serving versions the same
way (`components.release.champion`), so both read the folder through here.
"""

from pathlib import Path


def is_lightgbm_text_model(path: Path) -> bool:
    # LightGBM's text format starts with the line "tree"; file names vary by pipeline.
    with path.open("rb") as file:
        return file.read(5) == b"tree\n"


def lightgbm_model_files(version_dir: Path) -> list[Path]:
    """The LightGBM text model files directly in `version_dir` (a servable folder holds exactly one)."""
    return sorted(p for p in version_dir.iterdir() if p.is_file() and is_lightgbm_text_model(p))
