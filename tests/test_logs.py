"""Log lines read like the documentation's (logrus text format); secrets in fields never reach the output."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from specman.logs import configure

TIME = r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"'


@pytest.fixture
def capture() -> io.StringIO:
    stream = io.StringIO()
    configure("debug", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_lines_match_the_documentation(capture: io.StringIO) -> None:
    log = logging.getLogger("specman.sync")
    log.info("Syncing with OCI repo")
    log.info("tags[4.5.13 4.5.15 0.0.0]")
    log.info("Downloading 0.0.0")
    log.info("filename: manifests.tgz, isDir: false")
    log.warning("conflict", extra={"fields": {"path": "a/b.json", "winner": "4.5.15"}})
    out = lines(capture)
    assert re.fullmatch(TIME + r' level=info msg="Syncing with OCI repo"', out[0])
    assert out[1].endswith('level=info msg="tags[4.5.13 4.5.15 0.0.0]"')
    assert out[2].endswith('level=info msg="Downloading 0.0.0"')
    assert out[3].endswith('msg="filename: manifests.tgz, isDir: false"')
    assert out[4].endswith("level=warning msg=conflict path=a/b.json winner=4.5.15")


def test_quoting_and_escaping(capture: io.StringIO) -> None:
    logging.getLogger("specman").error('bad "name"\nnext', extra={"fields": {"empty": "", "n": 3}})
    (line,) = lines(capture)
    assert 'msg="bad \\"name\\"\\nnext"' in line
    assert 'empty=""' in line
    assert line.endswith("n=3")


def test_secrets_are_redacted(capture: io.StringIO) -> None:
    secret = "hunter2-Secret"
    logging.getLogger("specman").info(
        "login", extra={"fields": {"password": secret, "Authorization": f"Bearer {secret}", "user": "admin"}}
    )
    (line,) = lines(capture)
    assert secret not in line
    assert "user=admin" in line
    assert 'password="[redacted]"' in line


def test_json_format() -> None:
    stream = io.StringIO()
    configure("info", fmt="json", stream=stream)
    logging.getLogger("specman.x").debug("hidden")
    logging.getLogger("specman.x").info("Persisting 0.0.0", extra={"fields": {"token": "t0k3n"}})
    (line,) = lines(stream)
    obj = json.loads(line)
    assert obj["msg"] == "Persisting 0.0.0"
    assert obj["level"] == "info"
    assert obj["token"] == "[redacted]"
    with pytest.raises(ValueError, match="log format"):
        configure(fmt="xml")
