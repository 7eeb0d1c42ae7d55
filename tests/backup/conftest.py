"""Cluster rows built directly in the database: no harness, no worker (pushes simply find no one)."""

import base64
import io
import json
import tarfile

import pytest
from django.urls import reverse

from cluster.backup import rules as backup
from cluster.configuration import rules as config
from cluster.models import Cluster, ConfigGeneration, Event, Interface, Node, RealServer, VirtualService
from cluster.network import document as network

SHARED = "10.0.0.90"


def host_key(n):
    """A well-formed ed25519 public key line (the key itself is made up)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([n]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} lb{n}"


def facts(n):
    return {
        "hostname": f"lb{n}",
        "interfaces": [
            {"name": "eth0", "addresses": [f"10.0.0.{n}/24"], "mtu": 1500},
            {"name": "eth1", "addresses": [f"192.168.5.{n}/24"], "mtu": 9000},
        ],
    }


def make_cluster(nodes=3):
    cluster = Cluster.get()
    cluster.mode, cluster.shared_address = Cluster.Mode.CLUSTERING, SHARED
    cluster.save()
    for n in range(1, nodes + 1):
        Node.objects.create(
            number=n,
            address=f"10.0.0.{n}",
            ssh_user=f"flotilla-{n}",
            host_key=host_key(n),
            facts=facts(n),
            is_admin=n == 1,
            enabled=True,
        )
    network.ensure_interfaces()
    web = VirtualService.objects.create(name="web", address=SHARED, port=80)
    RealServer.objects.create(virtual_service=web, address="10.0.0.11", port=8080)
    RealServer.objects.create(virtual_service=web, address="10.0.0.12", port=8080, weight=500)
    VirtualService.objects.create(name="api", address=SHARED, port=443, scheduling="lc", persistence="source_ip")
    with config.change():
        pass  # a generation of what the database now says
    return cluster


def make_standalone():
    """A unit on its own in HA mode, with everything a cluster refuses."""
    cluster = Cluster.get()
    cluster.mode, cluster.shared_address, cluster.virtual_id = Cluster.Mode.HA, None, 7
    cluster.save()
    l4 = VirtualService.objects.create(
        name="legacy", address="10.0.0.50", port=25, layer=4, transparency=True, subnet_originating=False
    )
    RealServer.objects.create(virtual_service=l4, address="172.16.0.9", port=25)
    RealServer.objects.create(virtual_service=l4, address="10.0.0.20", port=25)
    VirtualService.objects.create(name="side", address="10.0.0.51", port=80, interface="eth1")
    VirtualService.objects.create(name="fine", address="10.0.0.52", port=80)


def wipe():
    VirtualService.objects.all().delete()
    Node.objects.all().delete()
    Interface.objects.all().delete()
    Cluster.objects.all().delete()


def rendered():
    return config.canonical(config.render())


def state():
    """Everything a refused restore must leave as it was."""
    return rendered(), ConfigGeneration.objects.count(), list(Node.objects.values_list("host_key", flat=True))


def restored_events():
    return Event.objects.filter(message__startswith="Configuration restored").count()


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    settings.BACKUP_KEY_FILE = settings.VAR_DIR / "backup_key"  # each test is its own cluster, with its own key
    return settings.VAR_DIR


@pytest.fixture
def cluster_rows(db):
    return make_cluster()


def unpack(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def repack(data, header_changes=None, content_change=None, sign=True, body=None):
    """The backup with its header or content (or, given body, its content's bytes) changed.

    sign: authenticated again with this cluster's key, as only someone holding that key can;
    otherwise it keeps the authentication it had, as anyone else editing the file must.
    """
    members = unpack(data)
    header, content = json.loads(members["header.json"]), json.loads(members["content.json"])
    header.update(header_changes or {})
    if content_change:
        content_change(content)
    body = config.canonical(content) if body is None else body
    if sign:
        return backup.seal(header, body)
    return backup.archive({"header.json": json.dumps(header).encode(), "content.json": body})


def upload(client, data, name="backup.tar.gz", **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("backup_restore"), {"action": "restore", "backup": SimpleUploadedFile(name, data), **fields}
    )


def download(client, include_users=False, passphrase=None):
    fields = {"include_users": "1"} if include_users else {}
    if passphrase:
        fields.update(passphrase=passphrase, passphrase_again=passphrase)
    response = client.post(reverse("backup_restore"), {"action": "backup", **fields})
    assert response.status_code == 200, response.content[:500]
    return response.content


def text_of(response):
    return response.content.decode()
