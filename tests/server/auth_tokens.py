"""The bearer tokens the test servers accept, by role (a module of its own: ``conftest`` is
ambiguous when several test folders run together)."""
TOKENS = {"scoring": "scoring-token-0123456789abcdef", "admin": "admin-token-0123456789abcdef"}
