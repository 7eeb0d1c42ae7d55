"""The seed's flows in a real browser against real units: create, join, enable, drain, delete."""

import re
import sqlite3
import ssl
from contextlib import closing

import pytest
from playwright.sync_api import expect

from nodes.agent.formats import tls_fingerprint
from tests.harness import WUI_PORT
from tests.helpers import SHARED, SHARED_URL, choose_clustering, log_in, row

pytestmark = pytest.mark.browser


def test_create_a_cluster_then_join_enable_drain_and_delete_a_node(page, units):
    first, second = units.node(1), units.node(2)
    page.on("dialog", lambda dialog: dialog.accept())

    # HA and Clustering, then Create New Cluster on unit 1.
    choose_clustering(page, first)
    page.get_by_role("link", name="Create New Cluster").click()
    page.get_by_label("Cluster Shared Address").fill(first.address)
    page.get_by_role("button", name="Create a New Cluster").click()
    expect(page.get_by_role("alert")).to_contain_text("is this unit's own address")
    page.get_by_label("Cluster Shared Address").fill(SHARED)
    page.get_by_role("button", name="Create a New Cluster").click()
    expect(page.get_by_text(f"Please reconnect to {SHARED}")).to_be_visible()
    first.settle()
    page.get_by_role("link", name="Continue").click()
    log_in(page, SHARED_URL + "/cluster-control/")
    expect(row(page, 1)).to_have_attribute("data-status", "admin")
    expect(row(page, 1).locator("td").nth(2)).to_have_text("Admin")
    expect(page.get_by_role("note")).to_contain_text("at least three enabled nodes; four are recommended")

    # Unit 1's own address keeps only its maintenance menu.
    page.goto(first.wui_url + "/")
    menu = page.get_by_role("navigation", name="Main menu")
    expect(menu.get_by_role("link", name="Reboot")).to_be_visible()
    expect(menu.get_by_role("link", name="Update Software")).to_have_count(0)

    # Add to Cluster on unit 2: a one-time code and its host key fingerprint, with a countdown.
    choose_clustering(page, second)
    page.get_by_role("button", name="Add to Cluster").click()
    code = page.get_by_test_id("join-code").inner_text().strip()
    fingerprint = page.get_by_test_id("fingerprint").inner_text().strip()
    # And the fingerprint of the certificate the unit's WUI presents, to compare with the browser's.
    presented = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((second.address, WUI_PORT)))
    expect(page.get_by_test_id("certificate-fingerprint")).to_have_text(tls_fingerprint(presented))
    expect(page.locator(".countdown")).to_have_text(re.compile(r"^(10:00|9:\d\d)$"))

    # Add New Node on the shared address.
    page.goto(SHARED_URL + "/cluster-control/")
    page.get_by_label("Address").fill(second.address)
    page.get_by_label("Join code").fill(code)
    page.get_by_label("Fingerprint").fill(fingerprint)
    page.get_by_role("button", name="Add New Node").click()
    expect(row(page, 2)).to_have_attribute("data-status", "disabled", timeout=20_000)
    second.settle()

    # The configuration pages come with the next issue; one Virtual Service lets nodes go Up.
    with closing(sqlite3.connect(first.root / "wui.sqlite3")) as db, db:
        db.execute("INSERT INTO cluster_virtualservice (name, address, port) VALUES ('web', ?, 80)", (SHARED,))

    # Enable: Starting, then Up once the warm-up has passed (3 s for these units), without a reload.
    row(page, 2).get_by_role("button", name="Enable").click()
    expect(row(page, 2)).to_have_attribute("data-status", re.compile("starting|up"), timeout=10_000)
    expect(row(page, 2)).to_have_attribute("data-status", "up", timeout=15_000)
    expect(row(page, 2).locator("td").nth(1)).to_have_attribute("data-colour", "green")

    # Show Options: a Node Drain Time of 2 s; out of range is refused with the valid range.
    page.get_by_role("button", name="Show Options").click()
    page.get_by_label("Node Drain Time").fill("900")
    page.get_by_role("button", name="Set Node Drain Time").click()
    expect(page.get_by_role("alert")).to_contain_text("Valid Values: 1-600")
    page.get_by_label("Node Drain Time").fill("2")
    page.get_by_role("button", name="Set Node Drain Time").click()
    expect(page.get_by_role("status")).to_contain_text("Node Drain Time set to 2.")

    # Disable: Draining, then Disabled once the drain time has passed.
    row(page, 2).get_by_role("button", name="Disable").click()
    expect(row(page, 2)).to_have_attribute("data-status", "draining", timeout=5_000)
    expect(row(page, 2)).to_have_attribute("data-status", "disabled", timeout=10_000)

    # Delete: confirmed, and the unit is a standalone unit again with the full menu.
    row(page, 2).get_by_role("button", name="Delete").click()
    expect(row(page, 2)).to_have_count(0, timeout=20_000)
    second.settle()
    page.goto(second.wui_url + "/")
    log_in(page, second.wui_url + "/")
    expect(page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Update Software")).to_be_visible()
