"""The REST API over a cluster made in the database: the same rules, the same reasons, as the WUI."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cluster import clock
from cluster.configuration import rules as config
from cluster.models import Cluster, Event, JoinRequest, Node, Rollout, RolloutNode

pytestmark = pytest.mark.usefixtures("cluster")


def test_cluster_reads_its_parameters_nodes_and_generation_with_an_etag(api):
    response = api.get("/api/v1/cluster")
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "clustering" and body["shared_address"] == "10.0.0.90"
    assert body["generation"] == config.latest_number() > 0
    assert response["ETag"] == f'"{body["generation"]}"'
    assert [n["id"] for n in body["nodes"]] == [1, 2, 3]
    assert body["nodes"][0]["is_admin"] and body["nodes"][0]["status"] == "admin"


def test_patch_cluster_sets_a_parameter_through_the_wui_form_and_rule(api):
    before = config.latest_number()
    response = api.patch("/api/v1/cluster", {"drain_time": 42}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["drain_time"] == 42 and Cluster.get().drain_time == 42
    assert response.json()["generation"] == before + 1
    assert Event.objects.filter(message__startswith="Node Drain Time changed from").exists()

    refused = api.patch("/api/v1/cluster", {"virtual_id": 0}, format="json")
    assert refused.status_code == 400
    body = refused.json()
    assert body["detail"] == body["errors"]["virtual_id"][0]
    assert "Cluster Virtual ID: enter a whole number from 1 to 255" in body["detail"]
    assert config.latest_number() == before + 1


def test_a_stale_write_is_refused_with_409_and_the_current_generation_and_changes_nothing(api):
    read = api.get("/api/v1/cluster").json()["generation"]
    assert api.patch("/api/v1/cluster", {"drain_time": 20, "generation": read}, format="json").status_code == 200
    now = read + 1

    # Another client wrote in between: its generation is no longer the newest.
    stale = api.patch("/api/v1/cluster", {"drain_time": 30, "generation": read}, format="json")
    assert stale.status_code == 409
    assert stale.json() == {
        "detail": f"The configuration changed since generation {read}: it is now at generation {now}; read it again.",
        "generation": now,
    }
    assert Cluster.get().drain_time == 20 and config.latest_number() == now

    # The same with If-Match, on another kind of write.
    node = Node.objects.get(number=2)
    stale = api.post("/api/v1/nodes/2/disable", HTTP_IF_MATCH=f'"{read}"')
    assert stale.status_code == 409 and stale.json()["generation"] == now
    assert Node.objects.get(pk=node.pk).enabled
    fresh = api.post("/api/v1/nodes/2/disable", HTTP_IF_MATCH=f'"{now}"')
    assert fresh.status_code == 200 and fresh.json()["enabled"] is False

    bad = api.post("/api/v1/nodes/3/disable", {"generation": "yesterday"}, format="json")
    assert bad.status_code == 400 and "generation" in bad.json()["errors"]


def test_enable_and_disable_answer_the_node_and_refuse_with_the_wuis_reason(api, admin_client):
    response = api.post("/api/v1/nodes/2/disable")
    assert response.status_code == 200
    assert response.json()["id"] == 2 and response.json()["enabled"] is False
    assert response.json()["status"] in ("draining", "disabled")

    again = api.post("/api/v1/nodes/2/disable")
    assert again.status_code == 409
    assert again.json() == {"detail": "Node 2 is already disabled"}
    # The WUI refuses the same way, in the same words.
    page = admin_client.post(f"/cluster-control/node/{Node.objects.get(number=2).pk}/disable")
    assert "Node 2 is already disabled" in page.content.decode()

    assert api.post("/api/v1/nodes/2/enable").json()["enabled"] is True
    assert api.post("/api/v1/nodes/2/resync").status_code == 200
    assert Event.objects.filter(message__startswith="Node 2 resync requested by admin").exists()
    missing = api.post("/api/v1/nodes/9/enable")
    assert (missing.status_code, missing.json()["detail"]) == (404, "There is no node 9 in the cluster.")


def test_add_node_answers_202_with_a_join_operation_to_poll(api):
    response = api.post("/api/v1/nodes", {"address": "10.0.0.7", "code": "abcd-ef23"}, format="json")
    assert response.status_code == 202, response.json()
    op = response.json()
    join = JoinRequest.objects.get()
    assert op["id"] == f"join-{join.pk}" and op["kind"] == "join" and op["state"] == "running"
    assert response["Location"] == op["url"] == f"/api/v1/operations/join-{join.pk}"
    assert join.code == "ABCD-EF23" and join.user.username == "admin"

    JoinRequest.objects.filter(pk=join.pk).update(state=JoinRequest.State.REFUSED, message="the join code is wrong")
    polled = api.get(op["url"]).json()
    assert polled["state"] == "failed" and polled["message"] == "the join code is wrong"

    refused = api.post("/api/v1/nodes", {"address": "10.0.0.2", "code": "ABCD-EF23"}, format="json")
    assert refused.status_code == 409 and refused.json()["detail"] == "10.0.0.2 is already a member of this cluster"
    bad = api.post("/api/v1/nodes", {"address": "node-7", "code": ""}, format="json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"address", "code"}


def test_delete_refuses_an_enabled_node_and_answers_202_for_a_disabled_one(api):
    refused = api.delete("/api/v1/nodes/3")
    assert refused.status_code == 409
    assert "only a Disabled node can be deleted" in refused.json()["detail"]
    assert api.delete("/api/v1/nodes/1").json()["detail"] == (
        "The admin node holds the shared address and cannot be deleted"
    )

    node = Node.objects.get(number=3)
    Node.objects.filter(pk=node.pk).update(enabled=False, disabled_at=timezone.now() - timedelta(hours=1))
    response = api.delete("/api/v1/nodes/3")
    assert response.status_code == 202
    assert response.json()["id"] == f"delete-{node.pk}" and response.json()["state"] == "running"
    Node.objects.filter(pk=node.pk).delete()  # what the worker does once the unit has left
    assert api.get(response.json()["url"]).json()["state"] == "succeeded"


def test_reboot_is_refused_without_an_update_and_answers_202_with_one(api):
    refused = api.post("/api/v1/nodes/2/reboot")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "there is no installed software update waiting for a reboot"

    Node.objects.update(version="1.0.0")
    rollout = Rollout.objects.create(version="1.1.0", state=Rollout.State.INSTALLED, touched_at=clock.now())
    for node in Node.objects.all():
        RolloutNode.objects.create(rollout=rollout, node=node, state=RolloutNode.State.INSTALLED)
    # Every node answers and is past its warm-up: the one-node-out rule lets the reboot through.
    long_ago = clock.now() - timedelta(minutes=5)
    Node.objects.update(last_ok_at=clock.now(), checked_at=clock.now(), healthy_since=long_ago, accepting=True)
    Cluster.objects.update(services_since=long_ago)
    response = api.post("/api/v1/nodes/2/reboot")
    assert response.status_code == 202, response.json()
    op = response.json()
    assert op["kind"] == "reboot" and op["state"] == "running"
    assert api.get(op["url"]).json() == op


def test_operations_that_do_not_exist_are_404(api):
    assert api.get("/api/v1/operations/join-999").status_code == 404
    assert api.get("/api/v1/operations/update-999").status_code == 404
    assert api.get("/api/v1/operations/nothing-1").status_code == 404
