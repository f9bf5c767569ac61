"""Fixtures shared by the test modules."""

import urllib.error
import urllib.request

import pytest


@pytest.fixture
def url_calls(monkeypatch):
    """Make every download fail as if offline; the list records the URLs tried."""
    calls: list[str] = []

    def offline_urlopen(request, *args, **kwargs):
        calls.append(getattr(request, "full_url", str(request)))
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline_urlopen)
    return calls
