"""Cluster Control as the operator meets it: refusals beside their form, Show Options kept open,
the recent Add New Node requests and their Clear, Delete's confirmation message, the admin node
disabled, the favicon."""

import re
from contextlib import closing
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cluster.membership.rules import node_rows
from cluster.membership.status import Status
from cluster.models import Cluster, JoinRequest, Node
from tests.helpers import add, wait_until

pytestmark = pytest.mark.django_db


def clustering():
    Cluster.objects.update_or_create(pk=1, defaults={"mode": "clustering", "shared_address": "10.9.0.90"})


def between(html, start, end):
    """The part of the page from `start` to the next `end`."""
    at = html.index(start)
    return html[at : html.index(end, at)]


def test_an_add_new_node_refusal_is_an_alert_inside_its_form_not_a_status_above_the_title(admin_client):
    clustering()
    response = admin_client.post(reverse("add_node"), {"address": "10.9.0.2", "code": "nope"})
    assert response.status_code == 400
    html = response.content.decode()
    form = between(html, '<form method="post" action="/cluster-control/add" class="add-node"', "</form>")
    assert 'aria-describedby="add-node-error"' in form
    alert = '<p class="form-error" role="alert" id="add-node-error"><strong>Error:</strong> '
    assert alert + "&#x27;NOPE&#x27; is not a join code" in form
    assert 'role="status"' not in between(html, "<main", "<h1>")


def test_a_malformed_address_marks_the_address_field_invalid(admin_client):
    clustering()
    response = admin_client.post(reverse("add_node"), {"address": "10.9.0", "code": "ABCD-EF23"})
    form = between(response.content.decode(), 'class="add-node"', "</form>")
    assert re.search(r'name="address" value="10.9.0"[^>]* aria-invalid="true" aria-describedby="add-node-error"', form)
    assert 'id="add-node-error"' in form and "enter the node&#x27;s IPv4 address" in form


@pytest.mark.parametrize("field,error_id", [("virtual_id", "virtual-id-error"), ("drain_time", "drain-time-error")])
def test_a_cluster_parameter_refusal_is_under_its_field_and_the_options_stay_open(admin_client, field, error_id):
    clustering()
    response = admin_client.post(reverse("set_parameter", args=[field]), {field: "900"})
    assert response.status_code == 400
    html = response.content.decode()
    assert '<details class="options" id="options" open>' in html
    cell = between(html, f'name="{field}"', "</form>")
    assert f'aria-invalid="true" aria-describedby="{error_id}"' in cell
    assert f'role="alert" id="{error_id}"><strong>Error:</strong>' in cell and "Valid Values: 1-" in cell
    assert 'role="status"' not in html


def test_show_options_stays_open_after_a_set_showing_the_new_value(admin_client):
    clustering()
    response = admin_client.post(reverse("set_parameter", args=["drain_time"]), {"drain_time": "25"})
    assert response.status_code == 302 and response["Location"] == "/cluster-control/?options=open#options"
    html = admin_client.get(response["Location"]).content.decode()
    assert '<details class="options" id="options" open>' in html
    assert 'name="drain_time" value="25"' in html
    assert '<p class="message success" role="status">Node Drain Time set to 25.</p>' in html
    # Only the Set opens them: Cluster Control on its own starts with them closed, as the seed's.
    assert '<details class="options" id="options">' in admin_client.get(reverse("cluster_control")).content.decode()


def joins_listed(client):
    html = client.get(reverse("cluster_control")).content.decode()
    if 'aria-label="Recent Add New Node requests"' not in html:
        return []
    return re.findall(r'data-join="([\d.]+)"', between(html, 'aria-label="Recent Add New Node requests"', "</ul>"))


def test_the_list_shows_the_recent_requests_and_clear_hides_the_finished_ones_without_deleting_them(admin_client):
    clustering()
    old = JoinRequest.objects.create(address="10.9.0.50", state=JoinRequest.State.REFUSED, message="wrong code")
    JoinRequest.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    for n in range(1, 8):
        JoinRequest.objects.create(address=f"10.9.0.{n}", state=JoinRequest.State.REFUSED, message="not waiting")
    assert joins_listed(admin_client) == ["10.9.0.7", "10.9.0.6", "10.9.0.5", "10.9.0.4", "10.9.0.3"]

    response = admin_client.post(reverse("add_node"), {"clear": "1"})
    assert response.status_code == 302
    assert joins_listed(admin_client) == []
    assert JoinRequest.objects.count() == 8  # the record is kept; only this operator's list is tidied

    # A request made after the Clear is listed, and one still running is listed whatever its age.
    JoinRequest.objects.create(address="10.9.0.20", state=JoinRequest.State.REFUSED, message="not waiting")
    running = JoinRequest.objects.create(address="10.9.0.21")
    JoinRequest.objects.filter(pk=running.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert joins_listed(admin_client) == ["10.9.0.20", "10.9.0.21"]


def test_another_operator_still_sees_what_one_operator_cleared(admin_client, client, django_user_model):
    clustering()
    JoinRequest.objects.create(address="10.9.0.5", state=JoinRequest.State.REFUSED, message="not waiting")
    admin_client.post(reverse("add_node"), {"clear": "1"})
    other = django_user_model.objects.create_superuser("second", password="another-long-password")
    client.force_login(other)
    assert joins_listed(client) == ["10.9.0.5"]


def test_a_finished_join_says_the_node_reboots_and_continue_acknowledges_it(admin_client):
    clustering()
    node = Node.objects.create(number=2, address="10.9.0.2", ssh_user="u", host_key="ssh-ed25519 AAAA")
    join = JoinRequest.objects.create(
        address="10.9.0.2", state=JoinRequest.State.DONE, message="Added as node 2", node=node
    )
    html = admin_client.get(reverse("cluster_control")).content.decode()
    item = between(html, 'data-join="10.9.0.2"', "</li>")
    assert "Added as node 2. The node reboots to finish the conversion to cluster mode." in item
    assert f'name="continue" value="{join.pk}">Continue</button>' in item
    admin_client.post(reverse("add_node"), {"continue": str(join.pk)})
    assert joins_listed(admin_client) == []
    assert JoinRequest.objects.filter(pk=join.pk).exists()


def test_resync_says_what_it_does_beside_the_table(admin_client):
    clustering()
    Node.objects.create(number=1, address="10.9.0.1", ssh_user="u", host_key="ssh-ed25519 AAAA", is_admin=True)
    html = admin_client.get(reverse("cluster_control")).content.decode()
    assert re.search(r'id="resync-hint">Resync: send the whole configuration to this node again', html)


@pytest.mark.django_db(transaction=True)  # the served file's response closes the connection when done
def test_the_favicon_is_linked_from_every_page_and_answers(admin_client):
    anonymous = Client()
    href = re.search(r'<link rel="icon" href="([^"]+)"', anonymous.get(reverse("login")).content.decode())[1]
    with closing(anonymous.get(href)) as icon:
        assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)
    assert f'<link rel="icon" href="{href}"' in admin_client.get(reverse("cluster_control")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_disabling_the_admin_node_is_shown_beside_the_table_and_delete_asks_for_a_second_ok(
    admin_client, cluster_on_node1
):
    admin = Node.objects.get(is_admin=True)
    response = admin_client.post(reverse("node_action", args=[admin.pk, "disable"]), follow=True)
    html = response.content.decode()
    assert f"Node {admin.number} (the admin node) disabled: it takes no new connections" in html
    assert f"Node {admin.number}, the admin node, is <strong>disabled</strong>" in between(html, 'id="live"', "<table")
    fragment = admin_client.get(reverse("cluster_control"), headers={"HX-Request": "true"}).content.decode()
    assert 'id="admin-disabled"' in fragment  # the table's own polling keeps it

    # A refused operation is an alert above the node table, not a confirmation.
    response = admin_client.post(reverse("node_action", args=[admin.pk, "disable"]))
    assert response.status_code == 400
    assert re.search(
        r'role="alert" id="node-error"><strong>Error:</strong> Node 1 is already disabled', response.content.decode()
    )

    response = admin_client.post(reverse("node_action", args=[admin.pk, "enable"]), follow=True)
    html = response.content.decode()
    assert "Node 1 (the admin node) enabled: it takes new connections again." in html
    assert 'id="admin-disabled"' not in html

    # Delete: after the browser's OK, the confirmation message carries its own OK.
    unit = cluster_on_node1.node(2)
    join = add(admin_client, unit)
    assert join.state == JoinRequest.State.DONE, join.message
    node = Node.objects.get(address=unit.address)
    wait_until(lambda: node_status(node.pk) == Status.DISABLED, 15)
    response = admin_client.post(reverse("node_action", args=[node.pk, "delete"]), follow=True)
    html = response.content.decode()
    assert re.search(
        rf'<div class="message acknowledge success" role="status"><span>Node {node.number} is being deleted.</span> '
        r'<button type="button" class="ok"[^>]*>OK</button></div>',
        html,
    )
    wait_until(lambda: not Node.objects.filter(pk=node.pk).exists(), 20)
    unit.settle()


def node_status(pk):
    return next(r["status"] for r in node_rows()[1] if r["node"].pk == pk)
