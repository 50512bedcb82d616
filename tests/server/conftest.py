import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from auth_tokens import TOKENS  # noqa: E402
from kernel.server.auth import token_line  # noqa: E402


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    from certs import make_certificates
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    path.write_text("# role name hash\n" + "".join(token_line(role, f"{role}-client", token) + "\n"
                                                  for role, token in TOKENS.items()))
    return str(path)


@pytest.fixture
def start_server():
    """start_server(**ServerConfig fields, loader=None) -> a started DecisionServer on a free
    loopback port; stopped at teardown."""
    from kernel.server.app import DecisionServer, ServerConfig

    servers = []

    def start(loader=None, **config):
        config.setdefault("port", 0)
        config.setdefault("grace_seconds", 2.0)
        server = DecisionServer(ServerConfig(**config), loader=loader)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(0)
