"""System Log Files: what an operator reads in the System and Warning Message Files."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cluster.models import Event

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 26, 7, 20, 1, tzinfo=UTC)


def event(message, at=T0, level="info", node_number=None, **fields):
    e = Event.objects.create(message=message, level=level, node_number=node_number, **fields)
    # time is auto_now_add: set it afterwards so that tests control the order.
    Event.objects.filter(pk=e.pk).update(time=at)
    return e


def rows(response):
    """The Message column of the page's table, top to bottom."""
    return [e.message for e in response.context["events"]]


def page(client, **params):
    return client.get(reverse("system_logs"), params)


def download(client, **params):
    response = client.get(reverse("system_logs_download"), params)
    body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    return response, body


@pytest.fixture
def log():
    event("Node 1 joined", at=T0, node_number=1)
    event("Node 3 now dead", at=T0 + timedelta(minutes=1), level="warning", node_number=3)
    event("Cluster created", at=T0 - timedelta(minutes=1))
    event("Node 3 is back", at=T0 + timedelta(minutes=2), node_number=3)
    event("Node 1 unreachable", at=T0 + timedelta(minutes=3), level="warning", node_number=1)


def test_the_system_message_file_shows_every_line_newest_first(admin_client, log):
    response = page(admin_client)
    assert response.status_code == 200
    assert rows(response) == [
        "Node 1 unreachable",
        "Node 3 is back",
        "Node 3 now dead",
        "Node 1 joined",
        "Cluster created",
    ]
    html = response.content.decode()
    assert ">System Message File</a>" in html and ">Warning Message File</a>" in html
    assert html.index("Node 1 unreachable") < html.index("Cluster created")


def test_a_line_shows_time_in_utc_level_node_user_and_source(admin_client, admin_user):
    event("Node 2 disabled", level="warning", node_number=2, user=admin_user, source_address="10.0.0.9")
    html = page(admin_client).content.decode()
    row = html[html.index('<tr class="level-warning">') :]
    row = row[: row.index("</tr>")]
    for cell in ("2026-11-26 07:20:01", "warning", "<td>2</td>", "Node 2 disabled", "admin", "10.0.0.9"):
        assert cell in row


def test_warnings_are_styled_apart_from_info_lines(admin_client, log):
    html = page(admin_client).content.decode()
    assert html.count('<tr class="level-warning">') == 2
    assert html.count('<tr class="level-info">') == 3
    assert "wui/logs.css" in html


def test_the_warning_message_file_shows_only_warnings(admin_client, log):
    response = page(admin_client, file="warning")
    assert rows(response) == ["Node 1 unreachable", "Node 3 now dead"]


def test_filter_by_node(admin_client, log):
    response = page(admin_client, node="3")
    assert rows(response) == ["Node 3 is back", "Node 3 now dead"]
    assert '<option value="3" selected>' in response.content.decode()


def test_the_node_choice_lists_the_nodes_seen_in_the_log(admin_client, log):
    html = page(admin_client).content.decode()
    assert '<option value="">All nodes</option>' in html
    assert '<option value="1">Node 1</option>' in html and '<option value="3">Node 3</option>' in html
    assert '<option value="2">' not in html


def test_filter_by_level(admin_client, log):
    assert rows(page(admin_client, level="info")) == ["Node 3 is back", "Node 1 joined", "Cluster created"]
    assert rows(page(admin_client, level="warning")) == ["Node 1 unreachable", "Node 3 now dead"]


def test_filters_combine_with_the_warning_file(admin_client, log):
    assert rows(page(admin_client, file="warning", node="1")) == ["Node 1 unreachable"]
    assert rows(page(admin_client, file="warning", level="info")) == []
    assert "No lines match." in page(admin_client, file="warning", level="info").content.decode()


def test_the_download_link_keeps_the_filters(admin_client, log):
    html = page(admin_client, file="warning", node="3", level="warning").content.decode()
    assert f'href="{reverse("system_logs_download")}?file=warning&amp;node=3&amp;level=warning"' in html


def test_the_download_has_the_filtered_lines_newest_first(admin_client, log):
    response, body = download(admin_client, node="3")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="system.txt"'
    assert body == "2026-11-26 07:22:01 info Node 3 is back\n2026-11-26 07:21:01 warning Node 3 now dead\n"


def test_the_warning_download_is_named_after_its_file(admin_client, log):
    response, body = download(admin_client, file="warning")
    assert response["Content-Disposition"] == 'attachment; filename="warning.txt"'
    assert body.splitlines() == [
        "2026-11-26 07:23:01 warning Node 1 unreachable",
        "2026-11-26 07:21:01 warning Node 3 now dead",
    ]


def test_a_message_with_newlines_stays_one_line_in_the_download(admin_client):
    event("ssh failed:\nconnection refused")
    _, body = download(admin_client)
    assert body == "2026-11-26 07:20:01 info ssh failed: connection refused\n"


def test_the_page_stops_at_500_lines_and_the_download_has_them_all(admin_client):
    Event.objects.bulk_create(Event(message=f"line {i}") for i in range(501))
    events = list(Event.objects.order_by("id"))
    for i, e in enumerate(events):
        e.time = T0 + timedelta(seconds=i)
    Event.objects.bulk_update(events, ["time"])
    response = page(admin_client)
    assert len(rows(response)) == 500
    assert rows(response)[0] == "line 500" and rows(response)[-1] == "line 1"
    assert "showing the newest 500" in response.content.decode()
    _, body = download(admin_client)
    assert len(body.splitlines()) == 501


def test_an_uncut_page_does_not_claim_to_be_cut(admin_client, log):
    assert "showing the newest" not in page(admin_client).content.decode()


@pytest.mark.parametrize(
    "params,text",
    [
        ({"node": "three"}, "Node must be a node number"),
        ({"node": "99999999999"}, "Node must be a node number"),
        ({"level": "debug"}, "Unknown level “debug”"),
        ({"file": "kernel"}, "Unknown log file “kernel”"),
    ],
)
def test_a_bad_filter_is_refused_with_a_message(admin_client, log, params, text):
    response = page(admin_client, **params)
    assert response.status_code == 400
    html = response.content.decode()
    assert text in html
    assert "Node 1 unreachable" not in html  # no lines pretend to match a filter that was not applied
    response, body = download(admin_client, **params)
    assert response.status_code == 400
    assert text in body


def test_the_page_costs_the_same_queries_for_many_lines(admin_client, django_user_model):
    users = [django_user_model.objects.create_user(f"op{i}") for i in range(3)]
    event("first", user=users[0], node_number=1)
    with CaptureQueriesContext(connection) as few:
        page(admin_client)
    for i in range(30):
        event(f"line {i}", user=users[i % 3], node_number=i % 5)
    with CaptureQueriesContext(connection) as many:
        response = page(admin_client)
    assert len(rows(response)) == 31
    assert len(many) == len(few)


def test_login_is_required(client, log):
    for url in (reverse("system_logs"), reverse("system_logs_download")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_times_are_utc_whatever_the_server_time_zone(admin_client, settings):
    settings.TIME_ZONE = "America/New_York"
    event("Node 2 disabled")
    assert "2026-11-26 07:20:01" in page(admin_client).content.decode()
    assert download(admin_client)[1] == "2026-11-26 07:20:01 info Node 2 disabled\n"
