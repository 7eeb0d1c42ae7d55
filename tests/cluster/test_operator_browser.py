"""The operator's steps in a real browser against real units, with the seed's labels: Continue waits
for the shared address, Add New Node's Continue and the node's reboot, errors beside their form,
Show Options kept open, Delete's two OKs, the admin node disabled, the favicon."""

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import SHARED, SHARED_URL, choose_clustering, log_in, row

pytestmark = pytest.mark.browser


def favicon_answers(page):
    return page.request.get(page.evaluate("document.querySelector('link[rel=icon]').href")).status


def test_the_operator_flow_with_the_seeds_labels(page, units):
    first, second, third = units.node(1), units.node(2), units.node(3)
    dialogs = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)

    # Create New Cluster: a refused address is an alert beside its field.
    choose_clustering(page, first)
    assert favicon_answers(page) == 200
    page.get_by_role("link", name="Create New Cluster").click()
    page.get_by_label("Cluster Shared Address").fill(first.address)
    page.get_by_role("button", name="Create a New Cluster").click()
    field = page.get_by_label("Cluster Shared Address")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile("is this unit's own address"))
    expect(page.get_by_role("alert")).to_contain_text("Error:")
    expect(page.get_by_role("status").filter(has_text="own address")).to_have_count(0)

    # Continue waits while the shared address does not answer: the unit's reboot, which starts the
    # shared WUI, is held until the page has been seen waiting. The browser itself cannot reach the
    # shared address, as a browser that has not accepted its certificate yet cannot: Continue opens
    # all the same, since the unit asks.
    page.route(f"{SHARED_URL}/**", lambda route: route.abort("failed"))
    with first.lock:
        field.fill(SHARED)
        page.get_by_role("button", name="Create a New Cluster").click()
        expect(page.get_by_text(f"Please reconnect to {SHARED}")).to_be_visible()
        expect(page.get_by_role("status")).to_have_text(f"Waiting for {SHARED} to answer...")
        proceed = page.get_by_role("link", name="Continue")
        expect(proceed).to_be_disabled()
        for _ in range(2):
            with page.expect_response(lambda r: r.url.endswith("/cluster-control/shared-answers")) as asked:
                pass
            assert asked.value.json() == {"answers": False}
        expect(proceed).to_be_disabled()
        expect(proceed).not_to_have_attribute("href", re.compile("."))
    expect(proceed).to_be_enabled(timeout=30_000)
    expect(page.get_by_role("status")).to_have_text(f"{SHARED} answers: Continue takes you there.")
    page.unroute(f"{SHARED_URL}/**")
    proceed.click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(SHARED_URL)}/"))
    first.settle()
    log_in(page, SHARED_URL + "/cluster-control/")
    expect(row(page, 1)).to_have_attribute("data-status", "admin")
    assert favicon_answers(page) == 200

    # Add New Node: a refusal is an alert inside that form, not a status above the title.
    page.get_by_label("Address").fill(second.address)
    page.get_by_label("Join code").fill("nope")
    page.get_by_role("button", name="Add New Node").click()
    add_form = page.locator("form.add-node")
    expect(add_form.get_by_role("alert")).to_contain_text("is not a join code")
    expect(page.get_by_role("status").filter(has_text="join code")).to_have_count(0)

    # Cluster Parameters: the refusal under its field; after a Set the options stay open.
    page.get_by_role("button", name="Show Options").click()
    drain = page.get_by_label("Node Drain Time")
    drain.fill("900")
    page.get_by_role("button", name="Set Node Drain Time").click()
    expect(drain).to_have_attribute("aria-invalid", "true")
    expect(drain).to_have_accessible_description(re.compile("Valid Values: 1-600"))
    drain.fill("2")
    page.get_by_role("button", name="Set Node Drain Time").click()
    expect(page.get_by_role("status")).to_have_text("Node Drain Time set to 2.")
    expect(drain).to_be_visible()
    expect(drain).to_have_value("2")
    expect(drain).not_to_have_attribute("aria-invalid", "true")

    # Resync says what it does where the button is.
    expect(page.get_by_text(re.compile("Resync: send the whole configuration to this node again"))).to_be_visible()

    # Add to Cluster on unit 2, whose own page stays open while it is added.
    own = page.context.new_page()
    choose_clustering(own, second)
    own.get_by_role("button", name="Add to Cluster").click()
    code = own.get_by_test_id("join-code").inner_text().strip()
    fingerprint = own.get_by_test_id("fingerprint").inner_text().strip()

    # A request refused by the unit (unit 3 is not waiting) joins the list, and Clear hides it.
    page.get_by_label("Address").fill(third.address)
    page.get_by_label("Join code").fill("ABCD-EF23")
    page.get_by_role("button", name="Add New Node").click()
    joins = page.get_by_role("list", name="Recent Add New Node requests")
    expect(joins.get_by_role("listitem").filter(has_text="Refused:")).to_have_count(1, timeout=20_000)

    # The node's reboot that finishes the conversion is held, so that its own page is seen saying so.
    with second.lock:
        page.get_by_label("Address").fill(second.address)
        page.get_by_label("Join code").fill(code)
        page.get_by_label("Fingerprint").fill(fingerprint)
        page.get_by_role("button", name="Add New Node").click()
        added = joins.get_by_role("listitem").filter(has_text="Added as node 2")
        expect(added).to_contain_text("The node reboots to finish the conversion to cluster mode.", timeout=20_000)
        expect(own.get_by_role("heading", name="Rebooting to finish the conversion to cluster mode")).to_be_visible(
            timeout=10_000
        )
    expect(own.get_by_text("This unit has rebooted and is back")).to_be_visible(timeout=30_000)
    expect(own).to_have_url(re.compile(r"\?back=1$"))
    own_menu = own.get_by_role("navigation", name="Main menu")
    expect(own_menu.get_by_role("link", name="Update Software")).to_have_count(0)
    own.close()
    second.settle()

    added.get_by_role("button", name="Continue").click()
    expect(joins.get_by_role("listitem")).to_have_count(1)
    page.get_by_role("button", name="Clear").click()
    expect(joins).to_have_count(0)

    # Delete: OK to confirm, then OK to the confirmation message.
    expect(row(page, 2)).to_have_attribute("data-status", "disabled", timeout=20_000)
    row(page, 2).get_by_role("button", name="Delete").click()
    confirmation = page.get_by_role("status").filter(has_text="Node 2 is being deleted.")
    expect(confirmation).to_be_visible()
    assert dialogs[-1].startswith("Delete node 2")
    confirmation.get_by_role("button", name="OK").click()
    expect(confirmation).to_have_count(0)
    expect(row(page, 2)).to_have_count(0, timeout=20_000)
    second.settle()

    # Disabling the admin node is accepted, as the seed's table offers it, and shown.
    row(page, 1).get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_contain_text("Node 1 (the admin node) disabled")
    expect(page.locator("#admin-disabled")).to_contain_text("the admin node, is disabled")
    expect(row(page, 1)).to_have_attribute("data-status", "admin")
