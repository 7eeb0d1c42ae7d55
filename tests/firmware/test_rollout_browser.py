"""An operator updates a cluster of real units in a real browser: upload with progress, OK, Reboot."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.cluster.conftest import add_enabled, cluster_on_node1, with_virtual_service  # noqa: F401
from tests.conftest import ADMIN_PASSWORD
from tests.firmware.test_rollout import build

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cluster_on_node1")]


def row(page, number):
    return page.locator(f'tr[data-node="{number}"]')


def test_an_operator_uploads_installs_and_reboots_the_nodes_admin_last(
    page,
    live_server,
    admin_client,
    units,
    key,
    tmp_path,
):
    with_virtual_service()
    add_enabled(admin_client, units.node(2))
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
    page.on("dialog", lambda dialog: dialog.accept())
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

    # The admin node goes last: its Reboot is refused while node 2 runs the old version.
    row(page, 1).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 1 is the admin node: it is rebooted last")

    row(page, 2).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 2 is rebooting to run the new software")
    expect(row(page, 2)).to_have_attribute("data-status", "down", timeout=15_000)
    expect(row(page, 2).locator("td.version")).to_have_text("1.1.0", timeout=30_000)
    expect(row(page, 2)).to_have_attribute("data-status", "starting", timeout=15_000)
    units.node(2).settle()

    row(page, 1).get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("main")).to_contain_text("Node 1 is rebooting to run the new software")
    expect(page.get_by_role("region", name="Software update")).to_contain_text(
        "Every node runs version 1.1.0.", timeout=30_000
    )
    units.node(1).settle()
