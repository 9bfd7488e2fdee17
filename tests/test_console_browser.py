"""The console in a real browser: Debian's chromium, driven by Selenium through chromium-driver.

An Owner signs in at the IdP, edits the mapping, previews a user moving from
Member to Admin, applies it, finds it in the audit trail and signs out; an
Admin then finds Apply and Export absent, and refused when sent directly.
Screenshots of the main pages go to ``$HUB_SCIM_CONSOLE_SCREENSHOTS`` when
set (the README's come from ``docs/console/``), else to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from connector.web.request_logging import request_recorder
from tests.fixtures_console import ConsoleOrg, at_idp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI") == "true":
        pytest.fail("chromium and chromium-driver are required in CI", pytrace=False)
    pytest.skip("chromium or chromium-driver is not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once chromium is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

NEW_RULE = '\n[[rules]]\ngroup = "PSA Technicians"\nrole = "admin"\n'


@pytest.fixture
def console_url(console_app: Flask) -> Iterator[str]:
    """The app served over HTTP on a loopback port, for the browser."""
    server = make_server("localhost", 0, console_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HUB_SCIM_CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in_at_idp(browser: WebDriver, url: str, login: str) -> None:
    browser.get(url)
    at_idp(browser.current_url, login)  # the provider vouches for the person's email
    field = browser.find_element(By.NAME, "sub")  # the provider's own sign-in form
    field.send_keys(login)
    field.submit()


def text(browser: WebDriver) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def arrive(browser: WebDriver, title: str) -> None:
    """Wait until the page titled ``title`` has loaded (a click navigates asynchronously)."""
    WebDriverWait(browser, 15).until(expected_conditions.title_contains(title))


def absent(browser: WebDriver, element_id: str) -> bool:
    browser.implicitly_wait(0)
    try:
        return not browser.find_elements(By.ID, element_id)
    finally:
        browser.implicitly_wait(5)


def follow(browser: WebDriver, link: str, title: str | None = None) -> None:
    browser.find_element(By.LINK_TEXT, link).click()
    arrive(browser, title or link)


def test_an_owner_maps_previews_applies_and_an_admin_cannot(
    browser: WebDriver,
    console_app: Flask,
    console_url: str,
    console_org: ConsoleOrg,
    shots: Path,
) -> None:
    recorder = request_recorder(console_app)
    assert recorder is not None
    recorder.flush()  # the IdP's requests so far, in the provisioning log at once
    home = f"{console_url}{console_org.path('/')}"
    sign_in_at_idp(browser, home, "ada@acme.example")
    arrive(browser, "Overview")
    assert "ada@acme.example" in text(browser)
    browser.save_screenshot(str(shots / "overview.png"))

    follow(browser, "People")
    assert "carol@acme.example" in text(browser)
    browser.save_screenshot(str(shots / "people.png"))
    follow(browser, "carol@acme.example")
    assert "member" in browser.find_element(By.ID, "role").text
    browser.save_screenshot(str(shots / "person.png"))
    follow(browser, "Owners")
    browser.save_screenshot(str(shots / "owners.png"))

    follow(browser, "Mapping")
    browser.save_screenshot(str(shots / "mapping.png"))
    editor = browser.find_element(By.ID, "source")
    editor.click()
    editor.send_keys(Keys.CONTROL, Keys.END)
    editor.send_keys(NEW_RULE)
    browser.find_element(By.ID, "preview").click()
    arrive(browser, "Mapping preview")
    preview = browser.find_element(By.ID, "preview-text").text
    assert "carol@acme.example: role member -> admin" in preview
    assert "Dry run: nothing was changed." in preview
    browser.save_screenshot(str(shots / "mapping-preview.png"))
    browser.find_element(By.ID, "apply").click()
    arrive(browser, "Mapping applied")
    assert "Mapping applied." in browser.find_element(By.ID, "applied-text").text

    follow(browser, "See it in the audit trail", "Audit")
    audit = browser.find_element(By.ID, "audit").text
    assert "console:ada@acme.example mapping.applied" in audit
    browser.save_screenshot(str(shots / "audit.png"))
    follow(browser, "Products")
    browser.save_screenshot(str(shots / "products.png"))
    follow(browser, "Connection")
    browser.save_screenshot(str(shots / "connection.png"))
    follow(browser, "Provisioning log")
    browser.save_screenshot(str(shots / "log.png"))
    browser.find_element(By.ID, "sign-out").click()
    arrive(browser, "Signed out")
    assert "You are signed out." in browser.find_element(By.ID, "signed-out").text
    browser.get(f"{console_url}{console_org.path('/people')}")  # the session is gone
    WebDriverWait(browser, 15).until(expected_conditions.url_contains("/oauth2/authorize"))

    # An Admin: no Apply, no Export; both refused when sent anyway.
    browser.delete_all_cookies()
    sign_in_at_idp(browser, f"{console_url}{console_org.path('/mapping')}", "bob@acme.example")
    arrive(browser, "Mapping")
    assert absent(browser, "preview")
    assert absent(browser, "apply")
    follow(browser, "Audit")
    assert absent(browser, "export")
    browser.save_screenshot(str(shots / "audit-admin.png"))
    browser.get(f"{console_url}{console_org.path('/audit/export.csv')}")
    arrive(browser, "Not allowed")
    assert "Admin may not export audit" in browser.find_element(By.ID, "refusal").text

    browser.get(f"{console_url}{console_org.path('/me')}")
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
    posted = requests.post(
        f"{console_url}{console_org.path('/mapping/apply')}",
        data={"source": NEW_RULE, "fingerprint": "0", "csrf_token": token},
        cookies=cookies,
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code == 403
    assert "Admin may not manage roles" in posted.text
