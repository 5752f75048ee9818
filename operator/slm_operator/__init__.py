"""slm-operator: small language models on Kubernetes, planned from the declared hardware."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slm-operator")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
