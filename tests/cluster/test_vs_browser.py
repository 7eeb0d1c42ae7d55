"""An operator creates a Virtual Service with a real server through the pages of a real browser."""

import pytest
from playwright.sync_api import expect

from tests.helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def log_in(page, url):
    page.goto(url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_an_operator_creates_a_virtual_service_with_a_real_server_and_sees_it_listed(page, live_server, admin_user):
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, live_server.url + "/")
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="View/Modify Services").click()
    expect(page.get_by_role("heading", name="Virtual Services")).to_be_visible()
    expect(page.get_by_text("No Virtual Services yet")).to_be_visible()

    page.get_by_role("link", name="Add New Virtual Service").click()
    page.get_by_label("Service Name").fill("web")
    page.get_by_label("Virtual Address").fill("10.0.0.90")
    page.get_by_label("Port", exact=True).fill("80")
    page.get_by_label("Layer").select_option("Layer 7")
    page.get_by_role("button", name="Add this Virtual Service").click()
    expect(page.get_by_role("status")).to_have_text(
        "Virtual Service web (10.0.0.90:80) created. Add its real servers below."
    )

    page.get_by_label("Real Server Address").fill("10.0.0.21")
    page.get_by_label("Real Server Port").fill("70000")
    page.get_by_role("button", name="Add Real Server").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Real Server Port: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"
    )
    expect(page.get_by_label("Real Server Address")).to_have_value("10.0.0.21")
    page.get_by_label("Real Server Port").fill("8080")
    page.get_by_role("button", name="Add Real Server").click()
    expect(page.get_by_role("status")).to_have_text(
        "Real server 10.0.0.21:8080 added to Virtual Service web (10.0.0.90:80)."
    )
    expect(page.get_by_label("Weight of real server 10.0.0.21:8080")).to_have_value("1000")

    page.get_by_role("link", name="All Virtual Services").click()
    row = page.locator('tr[data-vs="10.0.0.90:80"]')
    expect(row.locator("td")).to_have_text(["10.0.0.90:80", "TCP", "web", "L7", "Enabled", "1", "Modify Delete"])

    row.get_by_role("button", name="Delete Virtual Service web (10.0.0.90:80)").click()
    expect(page.get_by_role("status")).to_have_text("Virtual Service web (10.0.0.90:80) deleted.")
    expect(page.get_by_text("No Virtual Services yet")).to_be_visible()
