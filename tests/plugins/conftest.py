"""Fixtures for the plugin tests: the real plugin manager and the example third-party plugin
installed into a temporary directory."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_helpers import EXAMPLE_DIR


@pytest.fixture(scope="session")
def manager():
    from kernel.plugins import PluginManager
    return PluginManager({})


@pytest.fixture(scope="session")
def kernel():
    """The shipped bundle, compiled (or loaded from the cache)."""
    import kernel as k
    return k.Kernel.load()


@pytest.fixture(scope="session")
def policies(manager):
    return manager.policies()


@pytest.fixture(scope="session")
def example_plugin_path(tmp_path_factory) -> Path:
    """The example third-party plugin, pip-installed (offline, no dependencies) into a
    temporary directory that tests put on sys.path: the environment itself is untouched."""
    target = tmp_path_factory.mktemp("example-plugin-site")
    # build from a copy: pip builds in the source tree and would leave build/ and *.egg-info there
    source = tmp_path_factory.mktemp("example-plugin-build") / EXAMPLE_DIR.name
    shutil.copytree(EXAMPLE_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
                    str(source)], check=True, cwd=source.parent,
                   env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1",
                        "PIP_ROOT_USER_ACTION": "ignore"})
    return target
