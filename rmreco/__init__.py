"""rmreco: credit and cross-sell recommendations for banks' relationship managers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rmreco")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
