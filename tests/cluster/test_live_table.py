"""Cluster Control's node table refreshes itself every second, in a real browser against the live server.

An operator working it with the keyboard keeps the focus, an expired session goes to the login page as
a whole page, a table the control plane stopped answering for says so, and a screen reader hears which
node changed status.
"""

import re

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from cluster.models import Cluster, Node
from tests.helpers import ADMIN_PASSWORD, every_status, listed_node, log_in_and_wait, row

pytestmark = pytest.mark.browser


def quiet_cluster():
    """An admin node and two disabled ones: nothing in the table changes on its own."""
    Cluster.get()
    return [listed_node(1, is_admin=True, enabled=True), listed_node(2), listed_node(3)]


def is_refresh(response, status=None):
    request = response.request
    return (
        request.header_value("hx-request") == "true"
        and "/cluster-control/" in request.url
        and (status is None or response.status == status)
    )


def unchanged_refresh(page):
    """Wait for a refresh that the server answered "nothing changed"."""
    with page.expect_response(lambda r: is_refresh(r, 204), timeout=5_000):
        pass


def test_the_focus_stays_put_and_tab_moves_on_while_the_table_refreshes(page, live_server, admin_user):
    nodes = quiet_cluster()
    log_in_and_wait(page, live_server.url + "/cluster-control/")

    # Nothing changed: the server says so and the browser keeps the very same table.
    row(page, 1).get_by_role("button", name="Delete").focus()
    table = page.locator("#live").element_handle()
    unchanged_refresh(page)
    unchanged_refresh(page)
    assert table.evaluate("t => t.isConnected"), "the table was replaced though nothing changed"
    expect(row(page, 1).get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Tab")
    expect(row(page, 2).get_by_role("button", name="Enable")).to_be_focused()
    page.keyboard.press("Tab")
    resync = row(page, 2).get_by_role("button", name="Resync")
    expect(resync).to_be_focused()

    # Something changed: the new table comes in and the focus is on the same button in it.
    Node.objects.filter(pk=nodes[1].pk).update(enabled=True)
    expect(row(page, 2)).to_have_attribute("data-status", "down")
    assert not table.evaluate("t => t.isConnected"), "the changed table was not swapped in"
    expect(resync).to_be_focused()
    page.keyboard.press("Tab")
    expect(row(page, 2).get_by_role("button", name="Delete")).to_be_focused()


def test_a_table_that_changes_every_second_keeps_the_focus(page, live_server, admin_user):
    nodes = every_status()
    log_in_and_wait(page, live_server.url + "/cluster-control/")
    starting = row(page, nodes["starting"].number)
    resync = starting.get_by_role("button", name="Resync")
    resync.focus()
    left = starting.locator(".warm-up-left").inner_text()
    expect(starting.locator(".warm-up-left")).not_to_have_text(left, timeout=5_000)
    expect(resync).to_be_focused()


def test_a_status_change_is_announced_politely_outside_the_table(page, live_server, admin_user):
    nodes = quiet_cluster()
    log_in_and_wait(page, live_server.url + "/cluster-control/")
    announcer = page.locator("[aria-live=polite]")
    expect(announcer).to_have_count(1)
    assert announcer.evaluate("a => !a.closest('#live')"), "the live region is inside the table it announces"
    expect(announcer).to_have_text("")
    unchanged_refresh(page)

    Node.objects.filter(pk=nodes[2].pk).update(enabled=True)
    expect(announcer).to_have_text("Node 3 is Down.")
    expect(row(page, 3)).to_have_attribute("data-status", "down")
    assert "Node 1" not in announcer.inner_text()


def test_an_expired_session_takes_the_whole_page_to_the_login(page, live_server, admin_user):
    quiet_cluster()
    log_in_and_wait(page, live_server.url + "/cluster-control/")
    unchanged_refresh(page)
    page.get_by_label("Address").fill("10.9.0.")

    Session.objects.all().delete()
    expect(page).to_have_url(re.compile(r"/login/\?next=/cluster-control/$"))
    expect(page.get_by_role("heading", name="Log in")).to_have_count(1)
    expect(page.get_by_role("heading", name="Cluster Control")).to_have_count(0)

    # Logging in again goes back to Cluster Control.
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Cluster Control")).to_be_visible()


def refreshes_fail(fail):
    """A route on which the table's refreshes fail as ``fail`` says; whole pages still load."""

    def handle(route):
        if route.request.header_value("hx-request") == "true":
            fail(route)
        else:
            route.continue_()

    return handle


def test_a_table_the_server_stopped_answering_for_says_since_when(page, live_server, admin_user):
    quiet_cluster()
    log_in_and_wait(page, live_server.url + "/cluster-control/")
    table = page.locator("#live")
    notice = page.get_by_role("status").filter(has_text="Not updated since")
    unchanged_refresh(page)
    expect(table).not_to_have_class(re.compile(r"\bstale\b"))

    failures = {
        # A proxy in front of the control plane answers for it.
        "502": lambda route: route.fulfill(status=502, body="Bad Gateway"),
        "refused": lambda route: route.abort("connectionrefused"),
        # No answer at all: the request times out.
        "hung": lambda route: None,
    }
    for how, fail in failures.items():
        page.route("**/cluster-control/", refreshes_fail(fail))
        expect(table, how).to_have_class(re.compile(r"\bstale\b"), timeout=8_000)
        expect(notice, how).to_have_text(re.compile(r"^Not updated since \d\d:\d\d:\d\d\b"))
        expect(table, how).to_have_css("filter", "grayscale(1)")

        page.unroute("**/cluster-control/")
        expect(table, how).not_to_have_class(re.compile(r"\bstale\b"), timeout=8_000)
        expect(notice, how).to_have_count(0)
