"""optarena: compiler optimization as a Gymnasium game, with latency as the score."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("optarena")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
