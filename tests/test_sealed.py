"""The tests' own seal (tests/conftest.py): nothing past loopback, nothing of the machine's settings."""

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import HOST_SETTINGS, OutsideReach


@pytest.mark.parametrize("reach", [
    lambda: socket.getaddrinfo("ghcr.io", 443),
    lambda: socket.gethostbyname("pypi.org"),
    lambda: socket.create_connection(("140.82.112.3", 443), timeout=1),
    lambda: urllib.request.urlopen("https://ghcr.io/v2/", timeout=1),
], ids=["resolve", "gethostbyname", "connect-by-address", "urlopen"])
def test_a_reach_past_loopback_is_refused_and_recorded(reach, loopback_only):
    before = len(loopback_only)
    with pytest.raises(OutsideReach):
        reach()
    assert loopback_only[before:], "not recorded"
    del loopback_only[before:]  # recorded, which would fail this test at its end: seen, so forgiven


def test_loopback_is_reachable_by_name_and_address(stalled_listener, stalled_port):
    for host in ("127.0.0.1", "localhost"):
        socket.create_connection((host, stalled_port), timeout=5).close()
    with pytest.raises(urllib.error.URLError):  # a refused connection is an ordinary OSError
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=5)


def test_the_machines_settings_are_left_out():
    assert not set(HOST_SETTINGS) & set(os.environ)
    home = Path(os.environ["HOME"])
    assert home.name.startswith("kfp-ml-tests-home-")
    assert not (home / ".docker").exists() and not (home / ".kube").exists()
