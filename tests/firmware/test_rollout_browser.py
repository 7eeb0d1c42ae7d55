"""An operator updates a cluster of real units in a real browser: upload with progress, OK, Reboot."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.helpers import ADMIN_PASSWORD, add_all_enabled, all_up, build, past_warm_up, row, with_virtual_service

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cluster_on_node1")]


def test_an_operator_uploads_installs_and_reboots_the_nodes_admin_last(
    page,
    live_server,
    admin_client,
    units,
    key,
    tmp_path,
):
    with_virtual_service()
    add_all_enabled(admin_client, [units.node(n) for n in (2, 3)])
    path = build(tmp_path, key)

    page.goto(live_server.url + reverse("update_software"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_label("Software Update File").click()
    chooser.value.set_files(path)
    progress = []
    page.expose_function("sawProgress", lambda value: progress.append(value))
    page.evaluate(
        """() => new MutationObserver(() => {
             const bar = document.querySelector('progress[aria-label="Upload progress"]');
             if (bar) window.sawProgress(bar.value);
           }).observe(document.body, {subtree: true, attributes: true, characterData: true, childList: true})"""
    )
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Update Cluster").click()
    expect(page.get_by_role("main")).to_contain_text("transferred and validated")
    assert 100 in progress

    page.get_by_role("button", name="OK").click()
    expect(page).to_have_url(re.compile(r"/cluster-control/$"))
    expect(page.get_by_role("main")).to_contain_text("Installing version 1.1.0 on every node")
    expect(page.get_by_role("region", name="Software update")).to_contain_text(
        "The new software (version 1.1.0) has been installed", timeout=30_000
    )
    expect(row(page, 2).locator("td.version")).to_contain_text("(version 1.1.0 after its reboot)")

    # The admin node goes last: its Reboot is refused while nodes 2 and 3 run the old version.
    row(page, 1).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 1 is the admin node: it is rebooted last")

    all_up()  # the clock past the nodes' warm-up: each one serving, none out
    row(page, 2).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 2 is rebooting to run the new software")
    # Node 3 at once: node 2 is out from its Reboot on, before it even shows Down.
    dialogs.clear()
    row(page, 3).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text(
        re.compile(r"Node 2 is still out: rebooting since \d\d:\d\d:\d\d\. One node is out at a time")
    )
    assert dialogs == [
        f"Reboot node 3 ({units.node(3).address}) to run version 1.1.0? "
        "It is not drained first."
    ]
    expect(row(page, 2)).to_have_attribute("data-status", "down", timeout=15_000)
    expect(row(page, 2).locator("td.version")).to_have_text("1.1.0", timeout=30_000)
    expect(row(page, 2)).to_have_attribute("data-status", "starting", timeout=15_000)
    units.node(2).settle()
    row(page, 3).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text(re.compile(r"Node 2 is Starting \(\d+ s left\)"))

    past_warm_up(2)  # the clock moved past node 2's warm-up, and a health round saw it
    expect(row(page, 2)).to_have_attribute("data-status", "up", timeout=15_000)
    row(page, 3).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 3 is rebooting to run the new software")
    expect(row(page, 3).locator("td.version")).to_have_text("1.1.0", timeout=30_000)
    units.node(3).settle()
    past_warm_up(3)
    expect(row(page, 3)).to_have_attribute("data-status", "up", timeout=15_000)

    row(page, 1).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 1 is rebooting to run the new software")
    expect(page.get_by_role("region", name="Software update")).to_contain_text(
        "Every node runs version 1.1.0.", timeout=30_000
    )
    units.node(1).settle()
