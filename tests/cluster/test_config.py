"""Configuration generations: the agent's checks, the push, catch-up, resync, history."""

import hashlib
import json

import pytest
from django.urls import reverse

from cluster import ssh
from cluster.configuration import rules as config
from cluster.models import Cluster, ConfigGeneration, Event, Node
from nodes import agent
from tests.helpers import add, unit_state, wait_until


def envelope(body, generation=1, digest=None):
    digest = digest or hashlib.sha256(config.canonical(body)).hexdigest()
    return json.dumps({"generation": generation, "sha256": digest, "config": body})


BODY = {
    "schema": 1,
    "cluster": {"shared_address": "127.0.11.90", "virtual_id": 1, "drain_time": 10},
    "nodes": [],
    "virtual_services": [],
}


def target(unit):
    return ssh.Target(f"node {unit.n}", unit.address, 2222, unit.user, unit.host_key_line)


@pytest.fixture
def applied(units):
    """Unit 1 running on generation 5 of BODY."""
    pool = ssh.get_pool()
    assert pool.call(target(units.node(1)), "apply-config", envelope(BODY, 5)) == {"generation": 5, "changed": True}
    return units.node(1)


@pytest.mark.parametrize(
    "text,reason",
    [
        (envelope(BODY, 6, digest="0" * 64), "checksum mismatch"),
        (envelope(BODY, 4), "generation 4 is older than the applied 5"),
        (
            envelope({**BODY, "cluster": {**BODY["cluster"], "virtual_id": 300}}, 6),
            "'cluster.virtual_id' must be 1-255",
        ),
        (envelope({**BODY, "schema": 2}, 6), "schema 2 is not understood by version 1.0.0"),
        (envelope({**BODY, "virtual_services": "all"}, 6), "'virtual_services' must be a list"),
        ("{not json", "not a configuration document"),
    ],
)
def test_a_bad_document_is_refused_and_the_node_keeps_what_it_had(applied, text, reason):
    before = (applied.home / "config.json").read_bytes()
    with pytest.raises(ssh.CommandFailed, match=reason):
        ssh.get_pool().call(target(applied), "apply-config", text)
    assert (applied.home / "config.json").read_bytes() == before


def test_applying_keeps_the_previous_document_and_the_same_one_twice_changes_nothing(applied):
    newer = {**BODY, "cluster": {**BODY["cluster"], "virtual_id": 9}}
    pool = ssh.get_pool()
    assert pool.call(target(applied), "apply-config", envelope(newer, 6))["changed"] is True
    assert pool.call(target(applied), "apply-config", envelope(newer, 6))["changed"] is False
    assert unit_state(applied, "config.prev.json")["generation"] == 5
    assert unit_state(applied, "config.json")["config"]["cluster"]["virtual_id"] == 9


def test_a_node_that_was_down_during_a_push_catches_up_without_a_click(admin_client, cluster_on_node1):
    units = cluster_on_node1
    add(admin_client, units.node(2))
    node2 = Node.objects.get(address=units.node(2).address)
    units.node(2).stop()
    admin_client.post(reverse("set_parameter", args=["virtual_id"]), {"virtual_id": "77"})
    newest = ConfigGeneration.objects.order_by("-number").first().number
    wait_until(lambda: unit_state(units.node(1), "config.json").get("generation") == newest, 15)
    warned = Event.objects.filter(node=node2, level="warning", message__contains="did not apply configuration")
    wait_until(warned.exists, 30)
    assert unit_state(units.node(2), "config.json").get("generation", 0) < newest
    units.node(2).start()
    wait_until(lambda: unit_state(units.node(2), "config.json").get("generation") == newest, 15)
    assert unit_state(units.node(2), "config.json")["config"]["cluster"]["virtual_id"] == 77
    wait_until(lambda: Node.objects.get(pk=node2.pk).config_error == "", 10)


def test_resync_repairs_a_damaged_local_copy(admin_client, cluster_on_node1):
    unit = cluster_on_node1.node(1)
    node = Node.objects.get(number=1)
    newest = ConfigGeneration.objects.order_by("-number").first().number
    wait_until(lambda: unit_state(unit, "config.json").get("generation") == newest, 15)
    damaged = unit_state(unit, "config.json")
    damaged["config"]["cluster"]["virtual_id"] = 200  # edited behind the cluster's back
    (unit.home / "config.json").write_text(json.dumps(damaged))
    response = admin_client.post(reverse("node_action", args=[node.pk, "resync"]), follow=True)
    assert "Node 1 is being sent the whole configuration again." in response.content.decode()
    wait_until(lambda: unit_state(unit, "config.json")["config"]["cluster"]["virtual_id"] == 1, 15)


@pytest.mark.django_db
def test_history_shows_the_difference_and_rolls_back_as_a_new_generation(admin_client):
    with config.change():
        Cluster.objects.filter(pk=1).update(mode="clustering", shared_address="10.9.0.90")
    admin_client.post(reverse("set_parameter", args=["drain_time"]), {"drain_time": "33"})
    first, second = ConfigGeneration.objects.order_by("number")
    page = admin_client.get(reverse("config_diff"), {"a": first.number, "b": second.number}).content.decode()
    assert "-    &quot;drain_time&quot;: 10," in page and "+    &quot;drain_time&quot;: 33," in page
    response = admin_client.post(reverse("config_rollback", args=[first.number]), follow=True)
    assert f"Configuration of generation {first.number} restored as generation 3." in response.content.decode()
    assert Cluster.get().drain_time == 10
    assert ConfigGeneration.objects.get(number=3).document == first.document
    assert ConfigGeneration.objects.get(number=3).created_by.username == "admin"


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{}, {"a": "x", "b": "1"}, {"a": "1", "b": "99"}])
def test_comparing_generations_that_do_not_exist_is_refused(admin_client, query):
    response = admin_client.get(reverse("config_diff"), query)
    assert response.status_code == 400
    assert "Choose two existing generations to compare" in response.content.decode()


def test_the_agent_library_round_trips_what_it_accepts(tmp_path, monkeypatch):
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    assert agent.apply_config(envelope(BODY, 3)) == {"generation": 3, "changed": True}
    assert agent.read_json("config.json")["config"] == BODY
