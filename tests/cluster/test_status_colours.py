"""Each status shows in the colour status.COLOURS names for it, as the browser computes it.

The page only carries the colour's name (data-colour); the stylesheet maps names to the palette.
A status whose name the stylesheet does not know would show in plain text colour: this test looks
at the colour the browser paints, for a row in every status.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from cluster.membership.status import COLOURS, Status
from cluster.models import Cluster, Node, VirtualService
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.browser

PALETTE_PROBE = """name => {
    const probe = document.createElement("span");
    probe.style.color = `var(--${name})`;
    document.body.append(probe);
    const colour = getComputedStyle(probe).color;
    probe.remove();
    return colour;
}"""


CELL_COLOURS = """number => {
    const cell = document.querySelector(`tr[data-node="${number}"] td.status`);
    return [getComputedStyle(cell).color, getComputedStyle(cell, "::before").backgroundImage];
}"""


def one_node_in_every_status():
    now = timezone.now()
    Cluster.objects.update_or_create(
        pk=1,
        defaults={
            "mode": "clustering",
            # No shared address: the worker's health rounds leave these rows (and their made-up
            # addresses) alone, so every status holds while the browser looks.
            "shared_address": None,
            "drain_time": 600,
            "services_since": now - timedelta(hours=1),
            "checks_since": now - timedelta(minutes=5),
        },
    )
    VirtualService.objects.create(name="web", address="10.9.0.80", port=80)
    answering = {"last_ok_at": now + timedelta(hours=1), "checked_at": now, "accepting": True}
    rows = {
        Status.ADMIN: {"is_admin": True, "enabled": True, **answering},
        Status.UP: {"enabled": True, "healthy_since": now - timedelta(hours=1), **answering},
        Status.STARTING: {"enabled": True, "healthy_since": now, **answering},
        Status.DOWN: {"enabled": True, "failures": 3, "checked_at": now},
        Status.DRAINING: {"enabled": False, "disabled_at": now, **answering},
        Status.DISABLED: {"enabled": False, **answering},
        Status.CHECKING: {"enabled": True},
    }
    for number, fields in enumerate(rows.values(), start=1):
        Node.objects.create(number=number, address=f"10.9.0.{number}", ssh_user="u", host_key="", **fields)
    return {number: status for number, status in enumerate(rows, start=1)}


def test_every_status_is_painted_in_the_colour_its_table_names(page, live_server, admin_user):
    expected = one_node_in_every_status()
    assert set(expected.values()) == set(COLOURS), "a status without a row here would go untested"
    page.goto(live_server.url + reverse("cluster_control"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    text = page.evaluate(PALETTE_PROBE, "text")
    for number, status in expected.items():
        row = page.locator(f'tr[data-node="{number}"]')
        expect(row).to_have_attribute("data-status", status.value)
        # The live table replaces its rows every second (Starting counts down): the cell is found
        # and read in one step, never read after a refresh took it out of the page.
        painted, marker = page.evaluate(CELL_COLOURS, number)
        name = COLOURS[status]
        if name == "green-red":  # Starting: plain text beside a half green, half red marker
            assert painted == text
            assert page.evaluate(PALETTE_PROBE, "green") in marker and page.evaluate(PALETTE_PROBE, "red") in marker
            continue
        colour = page.evaluate(PALETTE_PROBE, name)
        assert colour != text, f"the palette has no colour called {name}"
        assert painted == colour, f"Node {number} is {status.label}: painted {painted}, {name} is {colour}"
