"""Network Setup in a real browser: open an interface, set its MTU, see it shown and a bad one refused."""

import pytest
from playwright.sync_api import expect

from cluster.models import Cluster, Node
from tests.helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_node(transactional_db):
    Cluster.objects.update_or_create(pk=1, defaults={"mode": "clustering", "shared_address": "127.0.11.90"})
    interface = {
        "name": "eth0",
        "mac": "00:00:00:00:00:01",
        "speed_mbps": 10000,
        "duplex": "full",
        "mtu": 1500,
        "addresses": ["127.0.11.1/24"],
    }
    return Node.objects.create(
        number=1,
        address="127.0.11.1",
        ssh_user="u",
        host_key="ssh-ed25519 AAAA",
        is_admin=True,
        facts={"interfaces": [interface]},
    )


def test_an_operator_sets_the_mtu_of_an_interface(page, live_server, admin_user, admin_node):
    page.goto(live_server.url + "/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Network Setup").click()
    expect(page.get_by_role("heading", name="Network Setup")).to_be_visible()
    page.get_by_role("link", name="Network Interface 0").click()
    expect(page.get_by_role("heading", name="Network Interface 0")).to_be_visible()
    expect(page.get_by_test_id("link-status")).to_have_text("Speed: 10000Mb/s, Full Duplex")
    expect(page.get_by_label("Interface Address for node 1")).to_have_value("127.0.11.1/24")
    expect(page.get_by_label("Use for Cluster checks")).to_be_checked()

    page.get_by_label("MTU:").fill("9000")
    page.get_by_role("button", name="Set MTU").click()
    expect(page.get_by_role("status")).to_have_text("Network Interface 0 (eth0): MTU changed from 1500 to 9000.")
    expect(page.get_by_label("MTU:")).to_have_value("9000")

    page.get_by_label("MTU:").fill("100")
    page.get_by_role("button", name="Set MTU").click()
    expect(page.get_by_role("status")).to_have_text(
        "MTU: enter a whole number from 576 to 9216 (Valid Values: 576-9216)"
    )

    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Network Setup").click()
    expect(page.locator('tr[data-interface="0"] td').last).to_have_text("9000")
