"""The console's registry form with the ECR authentication type, in a real headless Chromium against a real
``specman console`` (its AWS APIs at moto) and the real docker-registry holding moto's ECR password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import Select

from tests.conftest import RegistryFactory
from tests.fixtures.aws import ACCOUNT, MOTO_PASSWORD, MotoServer, aws_env
from tests.fixtures.browser import Browser
from tests.fixtures.certs import Certs
from tests.fixtures.console import ConsoleProcess, start_console
from tests.test_ui_console import _api, _assert_never_shown, _login, _row, _validate

AWS_SECRET = "Ui-Typed-Aws-Secret-17"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/palette-ecr"


@pytest.fixture
def console(tmp_path: Path, moto: MotoServer) -> Iterator[ConsoleProcess]:
    env = aws_env(tmp_path / "aws", moto.url, AWS_REGION="us-east-1", HOME=str(tmp_path / "home"))
    server = start_console(tmp_path / "console", tls=False, env=env)  # as the other UI tests: Chromium over http
    yield server
    server.stop()


def test_ecr_registry_form(
    browser: Browser, console: ConsoleProcess, registry_factory: RegistryFactory, certs: Certs
) -> None:
    registry = registry_factory("htpasswd", users={"AWS": MOTO_PASSWORD})
    _login(browser, console)
    browser.find("#add-registry").click()
    browser.visible("#registry-dialog")
    browser.find("#f-name").send_keys("Packs (ECR)")
    browser.find("#f-endpoint").send_keys(registry.url)
    assert browser.find("#aws-fields").get_attribute("hidden") is not None  # Basic first
    Select(browser.find("#f-auth-type")).select_by_value("ecr")
    browser.until(lambda d: browser.find("#aws-fields").is_displayed(), message="the AWS fields did not appear")
    assert not browser.find("#basic-fields").is_displayed()
    browser.find("#f-aws-key").send_keys("AKIAUIFORMKEY0000017")
    browser.find("#f-aws-secret").send_keys(AWS_SECRET)
    browser.find("#f-aws-role").send_keys(ROLE)
    browser.find("#f-aws-external").send_keys("tenant-ui")
    browser.find("#f-ca-file").send_keys(str(certs.ca_cert))
    browser.until(lambda d: "BEGIN CERTIFICATE" in browser.find("#f-ca").get_attribute("value"))
    checks = _validate(browser)
    assert set(checks.values()) == {"ok"}, checks
    credentials = browser.find("#validation li[data-check=credentials] .msg").text
    assert "password from AWS ECR" in credentials and ROLE in credentials
    browser.shot("console-registry-ecr", min_height=1100)
    browser.find("#confirm").click()
    browser.until(lambda d: browser.finds("#registries tbody tr"), message="the registry was not added")
    row = _row(browser, "Packs (ECR)")
    assert "ECR" in row.find_element("css selector", ".endpoint").text
    assert "Passed" in row.find_element("css selector", ".validation").text

    token = console.login()
    items = _api(console, token, "GET", "/v1/registries/oci").json()["items"]
    stored = next(item for item in items if item["name"] == "Packs (ECR)")
    assert stored["authType"] == "ecr" and stored["awsSecretAccessKeySet"] is True
    assert (stored["awsAccessKeyId"], stored["awsRoleArn"], stored["awsExternalId"]) == (
        "AKIAUIFORMKEY0000017",
        ROLE,
        "tenant-ui",
    )
    assert stored["username"] == "" and stored["passwordSet"] is False

    # Edit: the AWS fields come back (the secret write-only), and validation works with the stored secret
    row.find_element("css selector", ".menu-button").click()
    browser.visible(".menu-list:not([hidden]) [data-action=edit]").click()
    browser.visible("#registry-dialog")
    assert browser.find("#aws-fields").is_displayed() and not browser.find("#basic-fields").is_displayed()
    assert browser.find("#f-aws-role").get_attribute("value") == ROLE
    assert browser.find("#f-aws-secret").get_attribute("value") == ""
    assert "unchanged" in browser.find("#f-aws-secret").get_attribute("placeholder")
    assert set(_validate(browser).values()) == {"ok"}
    _assert_never_shown(browser, console, token, (AWS_SECRET, MOTO_PASSWORD))
    assert browser.errors() == []
