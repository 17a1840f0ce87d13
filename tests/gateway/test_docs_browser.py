"""The OpenAPI docs page in a real headless Chromium: it renders offline and can call /predict."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from chronotick_gateway.app import create_app
from chronotick_gateway.settings import GatewaySettings
from support.servers import serve_in_thread

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver: run scripts/setup-system"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,2400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    # No model service: the classical members answer, which is all a call from the page needs.
    with serve_in_thread(create_app(GatewaySettings())) as url:
        yield url


def test_docs_page_renders_every_operation_without_internet(browser: webdriver.Chrome, gateway: str) -> None:
    browser.get(f"{gateway}/docs")
    wait = WebDriverWait(browser, 20)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path")))
    paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/predict", "/health/live", "/health/ready", "/models", "/metrics"} <= paths
    assert "ChronoTick gateway" in browser.title


def test_docs_page_executes_a_predict_call(browser: webdriver.Chrome, gateway: str) -> None:
    browser.get(f"{gateway}/docs")
    wait = WebDriverWait(browser, 20)
    operation = wait.until(
        ready.element_to_be_clickable((By.CSS_SELECTOR, "#operations-default-predict_predict_post .opblock-summary"))
    )
    operation.click()
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".try-out__btn"))).click()
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".execute"))).click()
    status = wait.until(
        ready.presence_of_element_located((By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"))
    )
    assert status.text.strip().startswith("200")
    body = browser.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text
    assert '"forecasts"' in body and '"degraded"' in body


def test_redoc_page_renders_from_its_own_assets(browser: webdriver.Chrome, gateway: str) -> None:
    browser.get(f"{gateway}/redoc")
    WebDriverWait(browser, 20).until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-section-id]")))
    assert "predict" in browser.page_source.lower()
