"""The LoadMaster-compatible API as an existing script calls it: HTTP Basic (or apikey=), query parameters,
files in the body, XML parsed back; and the same commands as JSON through /accessv2."""

import base64
import hashlib
import io
import json
import os
import tarfile
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from auditlog.models import LogEntry
from django.test import Client
from django.utils import timezone

from cluster.backup import rules as backup
from cluster.models import Cluster, Event, Interface, JoinRequest, Node, RealServer, Rollout, VirtualService
from firmware import install, patch
from tests.helpers import ADMIN_PASSWORD, BACKUP_SHARED, make_cluster
from wui.api import keys

pytestmark = pytest.mark.django_db

BASIC = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
MAX_PATCH = 256 * 1024


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    settings.BACKUP_KEY_FILE = settings.VAR_DIR / "backup_key"
    settings.FIRMWARE_MAX_BYTES = MAX_PATCH
    return settings.VAR_DIR


@pytest.fixture
def script(admin_user):
    """A client with no session: every request carries its own credentials, as a script's do."""
    return Client()


@pytest.fixture
def cluster(db):
    return make_cluster()


class Answer:
    """An /access answer parsed back as a script parses it."""

    def __init__(self, response):
        self.response, self.status = response, response.status_code
        self.root = ElementTree.fromstring(response.content)  # noqa: S314 (our own answer)

    @property
    def ok(self):
        return self.root.get("stat") == "200" and self.root.get("code") == "ok"

    @property
    def error(self):
        return self.root.findtext("Error")

    def data(self, path):
        return self.root.findtext(f"Success/Data/{path}")

    def all(self, path):
        return self.root.findall(f"Success/Data/{path}")


def access(client, command, auth=BASIC, body=None, **params):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    url = f"/access/{command}"
    if body is None:
        return Answer(client.get(url, params, **headers))
    response = client.generic(
        # curl --data-binary labels the file as a form, as scripts send it.
        "POST",
        f"{url}?{urlencode(params)}",
        body,
        content_type="application/x-www-form-urlencoded",
        **headers,
    )
    return Answer(response) if response["Content-Type"].startswith("text/xml") else response


def v2(client, cmd, **fields):
    response = client.post("/accessv2", json.dumps({"cmd": cmd, **fields}), content_type="application/json")
    return response.status_code, response.json()


def refused(answer, status, reason):
    assert (answer.status, answer.root.get("stat"), answer.root.get("code")) == (status, str(status), "fail")
    assert reason in answer.error, answer.error


# --- authentication --------------------------------------------------------------------------------


def test_without_credentials_the_answer_is_loadmasters_401(script):
    answer = access(script, "listvs", auth=None)
    refused(answer, 401, "Authorization required")
    assert answer.response["WWW-Authenticate"] == 'Basic realm="flotilla"'


@pytest.mark.parametrize(
    "auth",
    [
        "Basic " + base64.b64encode(b"admin:wrong-password").decode(),
        "Basic " + base64.b64encode(b"nobody:" + ADMIN_PASSWORD.encode()).decode(),
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
def test_bad_credentials_are_401(script, auth):
    refused(access(script, "listvs", auth=auth), 401, "Incorrect username or password")


def test_the_browsers_session_alone_is_not_accepted(admin_client):
    """A logged-in WUI session must not lend its login to a request another page makes the browser send."""
    refused(access(admin_client, "listvs", auth=None), 401, "Authorization required")
    refused(access(admin_client, "addvs", auth=None, vs="10.0.0.50", port="80", prot="tcp"), 401, "Authorization")
    assert not VirtualService.objects.exists()


def test_wrong_passwords_lock_the_user_out_like_the_wui_login(script, settings):
    wrong = "Basic " + base64.b64encode(b"admin:wrong-password").decode()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        refused(access(script, "listvs", auth=wrong), 401, "Incorrect username or password")
    refused(access(script, "listvs", auth=wrong), 403, "Too many failed logins: admin is locked out for 15 minutes")
    # Locked out: even the right password is refused now, as on the login page.
    refused(access(script, "listvs"), 403, "locked out")


def test_an_api_key_in_the_query_works_and_a_revoked_one_does_not(script, admin_user, cluster):
    row, raw = keys.create(admin_user, "monitoring", read_only=True)
    answer = access(script, "listvs", auth=None, apikey=raw)
    assert answer.ok and len(answer.all("VS")) == 2
    keys.revoke(row)
    refused(access(script, "listvs", auth=None, apikey=raw), 401, "Invalid API key")
    refused(access(script, "listvs", auth=None, apikey="flt_nonsense"), 401, "Invalid API key")


def test_a_read_only_key_runs_only_commands_that_change_nothing(script, admin_user, cluster):
    _, raw = keys.create(admin_user, "monitoring", read_only=True)
    assert access(script, "cluster/status", auth=None, apikey=raw).ok
    assert access(script, "get", auth=None, apikey=raw, param="NodeDrainTime").ok
    before = VirtualService.objects.count()
    refused(access(script, "addvs", auth=None, apikey=raw, vs=BACKUP_SHARED, port="8080"), 403, "read-only")
    refused(access(script, "set", auth=None, apikey=raw, param="NodeDrainTime", value="20"), 403, "read-only")
    refused(access(script, "backup", auth=None, apikey=raw, includeusers="1"), 403, "password hashes")
    assert VirtualService.objects.count() == before and Cluster.get().drain_time == 10
    _, full = keys.create(admin_user, "deploy", read_only=False)
    assert access(script, "set", auth=None, apikey=full, param="NodeDrainTime", value="20").ok
    assert Cluster.get().drain_time == 20


# --- unknown commands and parameters ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["nosuchcommand", "cluster/nosuch", "listvs/extra", ""])
def test_an_unknown_command_is_loadmasters_failure_not_a_404_page(script, command):
    answer = access(script, command)
    refused(answer, 400, "Unknown command")
    assert answer.response["Content-Type"].startswith("text/xml")


def test_an_unknown_command_needs_credentials_first(script):
    refused(access(script, "nosuchcommand", auth=None), 401, "Authorization required")


def test_a_units_own_command_on_the_shared_address_says_where_it_runs(script, cluster):
    refused(access(script, "cluster/create", SharedAddress="10.0.0.99"), 422, "on a unit's own address")
    refused(access(script, "cluster/joincluster"), 422, "on a unit's own address")


# --- the cluster ------------------------------------------------------------------------------------


def test_cluster_status_lists_the_cluster_and_every_node(script, cluster):
    answer = access(script, "cluster/status")
    assert answer.ok
    assert answer.data("Cluster/SharedAddress") == BACKUP_SHARED
    assert answer.data("Cluster/ClusterVirtualId") == "1" and answer.data("Cluster/NodeDrainTime") == "10"
    nodes = answer.all("Node")
    assert [n.findtext("NodeId") for n in nodes] == ["1", "2", "3"]
    assert [n.findtext("Address") for n in nodes] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert nodes[0].findtext("Status") == "Admin" and nodes[0].findtext("Admin") == "Y"
    # No node has answered a health check: Down, as Cluster Control shows them.
    assert nodes[1].findtext("Status") == "Down" and nodes[1].findtext("Enabled") == "Y"


def test_addnode_checks_the_code_then_answers_once_the_join_is_accepted(script, cluster):
    refused(access(script, "cluster/addnode", Address="10.0.0.9"), 422, "Missing parameter: Code")
    refused(
        access(script, "cluster/addnode", Address="10.0.0.9", Code="1234"),
        422,
        "'1234' is not a join code: the unit shows one like ABCD-EF23 after Add to Cluster",
    )
    refused(access(script, "cluster/addnode", Address="10.0.0.2", Code="ABCD-EF23"), 422, "already a member")
    refused(access(script, "cluster/addnode", Address="nowhere", Code="ABCD-EF23"), 422, "is not an IPv4 address")
    assert not JoinRequest.objects.exists()
    answer = access(script, "cluster/addnode", Address="10.0.0.9", Code="abcd-ef23")
    assert answer.ok and "accepted; cluster/status lists it under Join" in answer.data("Message")
    join = JoinRequest.objects.get()
    assert (join.address, join.code, join.state, join.user.username) == ("10.0.0.9", "ABCD-EF23", "pending", "admin")
    listed = access(script, "cluster/status").all("Join")
    assert [(j.findtext("Address"), j.findtext("State")) for j in listed] == [("10.0.0.9", "Adding")]


def test_enable_disable_and_their_refusals_give_the_wuis_reasons(script, cluster):
    Node.objects.filter(number=2).update(enabled=False)
    answer = access(script, "cluster/enablenode", NodeId="2")
    assert answer.ok and answer.data("Message") == "Node 2 enabled: it comes into rotation after 30 s up."
    assert Node.objects.get(number=2).enabled
    refused(access(script, "cluster/enablenode", NodeId="2"), 422, "Node 2 is already enabled")
    assert access(script, "cluster/disablenode", NodeId="2").data("Message") == "Node 2 disabled: draining."
    refused(access(script, "cluster/disablenode", NodeId="2"), 422, "Node 2 is already disabled")
    refused(access(script, "cluster/enablenode", NodeId="9"), 422, "Unknown node: there is no node 9 in the cluster")
    refused(access(script, "cluster/enablenode", NodeId="two"), 422, "Invalid NodeId: 'two' is not a whole number")
    refused(access(script, "cluster/enablenode"), 422, "Missing parameter: NodeId")
    lines = list(Event.objects.values_list("message", flat=True))
    assert "Node 2 enabled by admin from 127.0.0.1" in lines


def test_deletenode_only_for_a_disabled_node_and_it_answers_once_accepted(script, cluster):
    refused(
        access(script, "cluster/deletenode", NodeId="3"),
        422,
        "only a Disabled node can be deleted (Disable it and wait for the drain to finish)",
    )
    refused(access(script, "cluster/deletenode", NodeId="1"), 422, "The admin node holds the shared address")
    Node.objects.filter(number=3).update(enabled=False, disabled_at=timezone.now() - timezone.timedelta(hours=1))
    answer = access(script, "cluster/deletenode", NodeId="3")
    assert answer.ok and answer.data("Message") == (
        "Node 3 is being deleted. cluster/status lists it (Deleting: Y) until it has left the cluster."
    )
    assert Node.objects.get(number=3).removing
    assert access(script, "cluster/status").all("Node")[2].findtext("Deleting") == "Y"


def test_get_and_set_the_cluster_parameters(script, cluster):
    assert access(script, "get", param="ClusterVirtualId").data("ClusterVirtualId") == "1"
    refused(access(script, "set", param="ClusterVirtualId", value="300"), 422, "Cluster Virtual ID")
    refused(access(script, "set", param="ClusterVirtualId", value="300"), 422, "1")
    refused(access(script, "set", param="clustervirtualid"), 422, "Missing parameter: value")
    refused(access(script, "set", param="hostname", value="x"), 422, "Unknown parameter: hostname")
    assert Cluster.get().virtual_id == 1
    assert access(script, "set", param="clustervirtualid", value="7").data("ClusterVirtualId") == "7"
    assert access(script, "get", param="ClusterVirtualId").data("ClusterVirtualId") == "7"
    assert access(script, "set", param="NodeDrainTime", value="30").ok
    assert (Cluster.get().virtual_id, Cluster.get().drain_time) == (7, 30)


def test_get_set_and_show_the_interface_options(script, cluster):
    answer = access(script, "showiface", interface="0")
    assert answer.ok and answer.data("Interface/Name") == "eth0"
    assert answer.data("Interface/IPAddress") == "10.0.0.1/24"
    assert [e.findtext("Address") for e in answer.all("Interface/NodeAddress")] == [
        "10.0.0.1/24",
        "10.0.0.2/24",
        "10.0.0.3/24",
    ]
    checks = {i.index for i in Interface.objects.filter(use_for_cluster_checks=True)}
    assert checks == {0}
    refused(
        access(script, "set", param="ClusterChecks", value="N", interface="0"),
        422,
        "At least one interface must be used for cluster checks",
    )
    assert access(script, "set", param="ClusterUpdates", value="Y", interface="1").data("ClusterUpdates") == "Y"
    assert Interface.objects.get(index=1).use_for_cluster_updates
    refused(access(script, "set", param="Mtu", value="100", interface="1"), 422, "MTU")
    assert access(script, "set", param="Mtu", value="9000", interface="1").data("Mtu") == "9000"
    assert access(script, "get", param="mtu", interface="1").data("Mtu") == "9000"
    refused(access(script, "showiface", interface="5"), 422, "Unknown interface: 5")
    refused(access(script, "set", param="ClusterUpdates", value="maybe", interface="1"), 422, "use Y or N")


def test_stats_sum_what_the_nodes_reported(script, cluster):
    """As Cluster Control adds them up: what each answering node last reported; a Down node reports nothing."""
    now, far = timezone.now(), timezone.timedelta(hours=1)
    Cluster.objects.filter(pk=1).update(services_since=now - far, checks_since=now + far)
    answering = {"accepting": True, "last_ok_at": now + far, "checked_at": now + 2 * far, "healthy_since": now - far}
    Node.objects.filter(number__in=(1, 2)).update(**answering)
    Node.objects.filter(number=2).update(active_connections=5, requests_per_second=40)
    Node.objects.filter(number=1).update(active_connections=1, requests_per_second=2)
    Node.objects.filter(number=3).update(active_connections=7, requests_per_second=70, checked_at=now + 2 * far)
    answer = access(script, "stats")
    assert (answer.data("VStotals/ActiveConns"), answer.data("VStotals/RequestsPerSec")) == ("6", "42")
    assert [(n.findtext("NodeId"), n.findtext("RequestsPerSec")) for n in answer.all("Node")] == [
        ("1", "2"),
        ("2", "40"),
    ]


# --- Virtual Services -------------------------------------------------------------------------------


def test_listvs_and_showvs_answer_loadmasters_elements(script, cluster):
    answer = access(script, "listvs")
    services = answer.all("VS")
    assert [(s.findtext("VSAddress"), s.findtext("VSPort"), s.findtext("NickName")) for s in services] == [
        (BACKUP_SHARED, "80", "web"),
        (BACKUP_SHARED, "443", "api"),
    ]
    web = services[0]
    assert (web.findtext("Protocol"), web.findtext("Enable"), web.findtext("Schedule")) == ("tcp", "Y", "rr")
    assert [(r.findtext("Addr"), r.findtext("Port"), r.findtext("Weight")) for r in web.findall("Rs")] == [
        ("10.0.0.11", "8080", "1000"),
        ("10.0.0.12", "8080", "500"),
    ]
    assert services[1].findtext("Persist") == "src"
    shown = access(script, "showvs", vs=BACKUP_SHARED, port="443", prot="tcp")
    assert shown.data("VS/NickName") == "api" and shown.data("VS/Schedule") == "lc"
    index = shown.data("VS/Index")
    assert access(script, "showvs", Index=index).data("VS/NickName") == "api"
    assert access(script, "showvs", vs=index).data("VS/NickName") == "api"
    refused(access(script, "showvs", vs=BACKUP_SHARED, port="444", prot="tcp"), 422, "Unknown VS")
    refused(access(script, "showvs", vs=BACKUP_SHARED, port="80", prot="udp"), 422, "Unknown VS")
    refused(access(script, "showvs", vs=BACKUP_SHARED, port="80", prot="sctp"), 422, "Invalid prot")
    refused(access(script, "showvs", port="80"), 422, "Missing parameter: vs")


def test_addvs_modvs_delvs(script, cluster):
    answer = access(script, "addvs", vs=BACKUP_SHARED, port="8080", prot="tcp", NickName="app", Schedule="wlc")
    assert answer.ok and answer.data("VS/NickName") == "app"
    vs = VirtualService.objects.get(port=8080)
    assert (vs.name, vs.scheduling, vs.layer, vs.check_url) == ("app", "wlc", 7, "/")
    refused(
        access(script, "addvs", vs=BACKUP_SHARED, port="8080", prot="tcp"),
        422,
        f"Port: {BACKUP_SHARED}:8080 is already used by Virtual Service app",
    )
    # A cluster's restriction, with the WUI's reason; nothing changed.
    refused(
        access(script, "modvs", vs=BACKUP_SHARED, port="8080", prot="tcp", ForceL7="N"),
        422,
        "Layer: in a cluster all Virtual Services must operate at Layer 7",
    )
    refused(access(script, "modvs", vs=BACKUP_SHARED, port="8080", Schedule="fastest"), 422, "Scheduling Method")
    refused(access(script, "modvs", vs=BACKUP_SHARED, port="8080", Persist="ssl"), 422, "Invalid Persist")
    assert VirtualService.objects.get(port=8080).layer == 7
    answer = access(script, "modvs", vs=BACKUP_SHARED, port="8080", Persist="src", Enable="N", NickName="app2")
    assert (answer.data("VS/Persist"), answer.data("VS/Enable"), answer.data("VS/NickName")) == ("src", "N", "app2")
    vs.refresh_from_db()
    assert (vs.persistence, vs.enabled, vs.name) == ("source_ip", False, "app2")
    assert LogEntry.objects.get_for_object(vs).filter(actor__username="admin").exists()
    assert access(script, "delvs", vs=BACKUP_SHARED, port="8080").ok
    assert not VirtualService.objects.filter(port=8080).exists()
    refused(access(script, "delvs", vs=BACKUP_SHARED, port="8080"), 422, "Unknown VS")


def test_addrs_modrs_delrs(script, cluster):
    where = {"vs": BACKUP_SHARED, "port": "80", "prot": "tcp"}
    answer = access(script, "addrs", rs="10.0.0.13", rsport="8081", weight="200", **where)
    assert answer.ok and (answer.data("Rs/Addr"), answer.data("Rs/Weight")) == ("10.0.0.13", "200")
    refused(access(script, "addrs", rs="10.0.0.14", rsport="8081", weight="0", **where), 422, "Weight")
    refused(access(script, "addrs", rs="10.0.0.14", **where), 422, "Missing parameter: rsport")
    refused(
        access(script, "addrs", rs="172.16.0.9", rsport="80", **where),
        422,
        "Real server 172.16.0.9 is not local: in a cluster each real server must be in the subnet of a node interface",
    )
    refused(access(script, "addrs", rs="10.0.0.13", rsport="8081", **where), 422, "is already a real server")
    answer = access(script, "modrs", rs="10.0.0.13", rsport="8081", weight="300", enable="N", **where)
    assert (answer.data("Rs/Weight"), answer.data("Rs/Enable")) == ("300", "N")
    rs = RealServer.objects.get(address="10.0.0.13")
    assert (rs.weight, rs.enabled, rs.port) == (300, False, 8081)
    assert access(script, "modrs", rs="10.0.0.13", rsport="8081", newport="9090", **where).data("Rs/Port") == "9090"
    refused(access(script, "modrs", rs="10.0.0.13", rsport="8081", weight="5", **where), 422, "Unknown real server")
    assert access(script, "delrs", rs="10.0.0.13", rsport="9090", **where).ok
    assert not RealServer.objects.filter(address="10.0.0.13").exists()


# --- backup, restore, software update, reboot --------------------------------------------------------


def test_backup_downloads_the_file_and_restore_takes_it_back_from_the_body(script, cluster):
    response = Client().get("/access/backup", HTTP_AUTHORIZATION=BASIC)
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith('attachment; filename="flotilla-backup-')
    data = response.content
    VirtualService.objects.filter(name="api").delete()
    answer = access(script, "restore", body=data, Type="1")
    assert answer.ok, answer.error
    assert "Configuration restored from the cluster backup" in answer.data("Message")
    assert VirtualService.objects.filter(name="api").exists()
    # Restoring it again changes nothing, and says so.
    assert "nothing changed" in access(script, "restore", body=data, Type="1").data("Message")


def test_restore_refusals_say_why_and_change_nothing(script, cluster, settings, tmp_path):
    data = backup.build()
    refused(access(script, "restore", body=data), 422, "Missing parameter: Type")
    refused(access(script, "restore", body=b"", Type="1"), 422, "as the request's body")
    refused(access(script, "restore", body=b"not a backup at all", Type="1"), 422, "This is not a backup file")
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar, tarfile.open(edited, "w:gz") as out:
        for member in tar.getmembers():
            content = tar.extractfile(member).read().replace(b'"web"', b'"wab"')
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))
    refused(access(script, "restore", body=edited.read_bytes(), Type="1"), 422, "Authentication failed")
    settings.BACKUP_MAX_BYTES = 1000
    response = access(script, "restore", body=data, Type="1")
    refused(response, 413, "The file is too large")
    assert list(VirtualService.objects.values_list("name", flat=True).order_by("name")) == ["api", "web"]
    assert not list((backup.backup_dir() / "incoming").glob("*"))  # no upload left behind


@pytest.fixture
def key(settings):
    private = patch.new_private_key()
    settings.FIRMWARE_TRUSTED_KEYS = [patch.public_key_text(private)]
    return private


def build_patch(tmp_path, key, version="1.1.0", extra=b""):
    payload = tmp_path / f"payload-{version}"
    (payload / "nodes").mkdir(parents=True, exist_ok=True)
    (payload / "nodes" / "agent.py").write_text(f'VERSION = "{version}"\n')
    if extra:
        (payload / "nodes" / "data.bin").write_bytes(extra)
    path = tmp_path / f"flotilla-{version}.patch"
    patch.build(path, payload, version, key)
    return path.read_bytes()


def answering_cluster():
    now = timezone.now()
    Cluster.objects.create(pk=1, mode="clustering", shared_address="127.0.12.90", created_at=now)
    for n in (1, 2, 3):
        Node.objects.create(
            number=n,
            address=f"127.0.12.{n}",
            ssh_user=f"u{n}",
            host_key="ssh-ed25519 AAAA",
            is_admin=n == 1,
            enabled=n != 1,
            last_ok_at=now,
        )


def test_installpatch_validates_the_body_and_answers_once_the_update_is_under_way(script, key, tmp_path, var_dir):
    answering_cluster()
    answer = access(script, "installpatch", body=build_patch(tmp_path, key))
    assert answer.ok, answer.error
    assert answer.data("Version") == "1.1.0" and "transferred and validated" in answer.data("Message")
    update = Rollout.objects.get()
    assert (update.version, update.state, update.nodes.count()) == ("1.1.0", "sending", 3)
    assert access(script, "cluster/status").data("Update/State") == "Sending to the nodes"
    refused(
        access(script, "installpatch", body=build_patch(tmp_path, key, "1.2.0")),
        422,
        "another software update (version 1.1.0) is in progress",
    )


def test_a_patch_larger_than_what_django_holds_in_memory_is_streamed(script, key, tmp_path, settings):
    settings.FIRMWARE_MAX_BYTES = 8 * 2**20
    answering_cluster()
    body = build_patch(tmp_path, key, extra=os.urandom(3 * 2**20))
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    answer = access(script, "installpatch", body=body)
    assert answer.ok, answer.error
    assert install.patch_path(hashlib.sha256(body).hexdigest()).read_bytes() == body


def test_installpatch_refusals(script, key, tmp_path, var_dir):
    refused(access(script, "installpatch", body=b"garbage"), 422, "The software update was refused")
    good = build_patch(tmp_path, key)
    refused(access(script, "installpatch", body=good), 422, "there is no cluster: create one on Cluster Control first")
    refused(access(script, "installpatch", body=b"x" * (MAX_PATCH + 1)), 413, "The file is too large")
    assert not Rollout.objects.exists()
    assert not list((var_dir / "firmware" / "incoming").glob("*"))


def test_restorepatch_and_reboot_say_what_they_cannot_do(script, cluster):
    refused(access(script, "restorepatch"), 422, "restorepatch is not available")
    refused(
        access(script, "reboot"),
        422,
        "No node was rebooted: there is no installed software update waiting for a reboot",
    )


# --- /accessv2 --------------------------------------------------------------------------------------


def test_accessv2_runs_the_same_commands_as_json(script, admin_user, cluster, tmp_path):
    _, raw = keys.create(admin_user, "deploy", read_only=False)
    status, answer = v2(script, "listvs", apikey=raw)
    assert (status, answer["code"], answer["status"]) == (200, 200, "ok")
    assert answer["message"] == "Command successfully executed"
    assert [vs["NickName"] for vs in answer["VS"]] == ["web", "api"]
    assert answer["VS"][0]["Rs"][1] == {
        "Status": "Up",
        "VSIndex": answer["VS"][0]["Index"],
        "RsIndex": answer["VS"][0]["Rs"][1]["RsIndex"],
        "Addr": "10.0.0.12",
        "Port": 8080,
        "Weight": 500,
        "Enable": "Y",
    }
    status, answer = v2(script, "addvs", apiuser="admin", apipass=ADMIN_PASSWORD, vs=BACKUP_SHARED, port=81, prot="tcp")
    assert status == 200 and answer["VS"]["VSPort"] == 81
    status, answer = v2(script, "cluster.status", apikey=raw)
    assert status == 200 and [n["NodeId"] for n in answer["Node"]] == [1, 2, 3]
    status, answer = v2(script, "set", apikey=raw, param="NodeDrainTime", value=0)
    assert (status, answer["status"]) == (422, "fail") and "Node Drain Time" in answer["message"]
    status, answer = v2(script, "backup", apikey=raw)
    assert status == 200 and answer["filename"].startswith("flotilla-backup-")
    # The file comes base64-encoded in the JSON, and is a backup this cluster reads back.
    path = tmp_path / "from-json.tar.gz"
    path.write_bytes(base64.b64decode(answer["file"]))
    assert backup.read(path).origin == "cluster"


def test_accessv2_failures_are_json(script, admin_user):
    assert v2(script, "listvs") == (401, {"code": 401, "message": "Authorization required", "status": "fail"})
    assert v2(script, "listvs", apiuser="admin", apipass="wrong")[0] == 401
    status, answer = v2(script, "nosuchcommand", apiuser="admin", apipass=ADMIN_PASSWORD)
    assert (status, answer) == (400, {"code": 400, "message": "Unknown command", "status": "fail"})
    status, answer = v2(script, "restore", apiuser="admin", apipass=ADMIN_PASSWORD, Type=1)
    assert status == 422 and "send it to /access/restore" in answer["message"]
    # Without credentials nothing else is said; with them, what is wrong with the request.
    assert script.post("/accessv2", "not json", content_type="application/json").status_code == 401
    assert script.get("/accessv2").status_code == 401
    response = script.post("/accessv2", "not json", content_type="application/json", HTTP_AUTHORIZATION=BASIC)
    assert response.status_code == 400 and response.json()["message"] == 'The body must be a JSON object with "cmd"'
    assert script.get("/accessv2", HTTP_AUTHORIZATION=BASIC).status_code == 405
