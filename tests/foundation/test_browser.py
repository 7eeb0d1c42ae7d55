"""A real browser logs in on the shared WUI and on a node's local WUI."""

import re

import pytest
from playwright.sync_api import expect

from nodes import agent
from tests.helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def log_in(page, url, password=ADMIN_PASSWORD):
    page.goto(url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_an_operator_logs_in_and_sees_the_loadmaster_menu(page, live_server, admin_user):
    log_in(page, live_server.url)
    menu = page.get_by_role("navigation", name="Main menu")
    for label in (
        "Home",
        "View/Modify Services",
        "Network Setup",
        "HA and Clustering",
        "Cluster Control",
        "Backup/Restore",
        "Update Software",
        "System Log Files",
    ):
        expect(menu.get_by_role("link", name=label, exact=True)).to_be_visible()
    menu.get_by_role("link", name="Backup/Restore").click()
    expect(page.get_by_role("heading", name="Backup/Restore")).to_be_visible()


def test_a_wrong_password_is_refused_in_the_browser(page, live_server, admin_user):
    log_in(page, live_server.url, password="not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    expect(page.get_by_role("navigation", name="Main menu")).to_have_count(0)


def test_a_member_units_local_wui_shows_only_its_own_options(page, harness, monkeypatch):
    node = harness.node(3)
    monkeypatch.setenv("NODE_HOME", str(node.home))
    agent.write_json("membership.json", {"mode": "member"})
    try:
        log_in(page, node.wui_url + "/")
        menu = page.get_by_role("navigation", name="Main menu")
        expect(menu.get_by_role("link", name="Cluster Control")).to_be_visible()
        expect(menu.get_by_role("link", name="Reboot")).to_be_visible()
        expect(menu.get_by_role("link", name="Update Software")).to_have_count(0)
        expect(page.get_by_role("main")).to_contain_text(re.compile("lb3"))
    finally:
        (node.home / "membership.json").unlink()
