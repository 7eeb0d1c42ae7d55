"""Update Software: an operator uploads a patch; a good one is kept, a bad one is refused and nothing kept."""

import base64
import gzip
import hashlib
import io
import json
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from cluster.backup import rules as backup
from cluster.models import Cluster, Node, Rollout
from cluster.rollout import versions
from firmware import patch
from tests.helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db

MAX_BYTES = 256 * 1024


@pytest.fixture
def key():
    return patch.new_private_key()


@pytest.fixture
def var_dir(settings, tmp_path, key):
    settings.VAR_DIR = tmp_path / "var"
    settings.FIRMWARE_TRUSTED_KEYS = [patch.public_key_text(key)]
    settings.FIRMWARE_MAX_BYTES = MAX_BYTES
    return settings.VAR_DIR


def build(tmp_path, key, version="1.1.0", name="flotilla-1.1.0.patch"):
    payload = tmp_path / f"payload-{version}"
    (payload / "nodes").mkdir(parents=True, exist_ok=True)
    (payload / "nodes" / "agent.py").write_text(f'VERSION = "{version}"\n')
    path = tmp_path / name
    patch.build(path, payload, version, key)
    return path


@pytest.fixture
def good(tmp_path, key):
    return build(tmp_path, key)


def upload(client, path, **fields):
    return client.post(
        reverse("update_software"), {"patch": SimpleUploadedFile(path.name, path.read_bytes()), **fields}
    )


def kept(var_dir):
    """Everything left under VAR_DIR/firmware, temporary files included."""
    root = var_dir / "firmware"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def text_of(response):
    return response.content.decode()


def test_the_page_needs_a_login(client, var_dir, good):
    response = client.get(reverse("update_software"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert upload(client, good).status_code == 302
    assert kept(var_dir) == []


def test_the_page_is_the_seeds_update_loadmaster_software(admin_client, var_dir):
    html = text_of(admin_client.get(reverse("update_software")))
    for text in ("Update LoadMaster Software", "Software Update File:", 'type="file"', "Update Cluster"):
        assert text in html
    assert 'enctype="multipart/form-data"' in html
    assert "OK to continue" in html
    assert f'href="{reverse("update_software")}"' in html  # the menu entry leads here


def test_a_good_patch_is_transferred_validated_and_kept_by_its_checksum(admin_client, var_dir, good, key):
    response = upload(admin_client, good)
    assert response.status_code == 200
    html = text_of(response)
    assert "The software update flotilla 1.1.0 was transferred and validated." in html
    manifest = patch.verify(good, [patch.public_key_text(key)], MAX_BYTES, "1.0.0")
    assert manifest.created in html and manifest.sha256 in html
    assert kept(var_dir) == [f"{manifest.sha256}.patch"]
    assert (var_dir / "firmware" / f"{manifest.sha256}.patch").read_bytes() == good.read_bytes()
    assert 'name="action" value="install"' in html and ">OK</button>" in html


def test_a_kept_patch_is_listed_with_its_version(admin_client, var_dir, good):
    upload(admin_client, good)
    html = text_of(admin_client.get(reverse("update_software")))
    assert "Validated software updates" in html
    assert "<td>1.1.0</td>" in html


def install(client, sha256):
    return client.post(reverse("update_software"), {"action": "install", "patch": sha256})


def a_cluster(down=()):
    """A cluster whose nodes answered their last health check just now, but for those in ``down``."""
    now = timezone.now()
    Cluster.objects.create(pk=1, mode="clustering", shared_address="127.0.11.90", created_at=now)
    for n in (1, 2, 3):
        Node.objects.create(
            number=n,
            address=f"127.0.11.{n}",
            ssh_user=f"u{n}",
            host_key="ssh-ed25519 AAAA",
            is_admin=n == 1,
            enabled=n != 1,
            last_ok_at=now,
            failures=1 if n in down else 0,
        )


def test_ok_without_a_cluster_is_refused_and_starts_nothing(admin_client, var_dir, good):
    upload(admin_client, good)
    response = install(admin_client, sha256_of(good))
    assert response.status_code == 409
    assert "The software update was not started: there is no cluster: create one on Cluster Control first." in (
        text_of(response)
    )
    assert not Rollout.objects.exists()


def test_ok_with_a_node_down_is_refused_with_that_node(admin_client, var_dir, good):
    a_cluster(down=(3,))
    upload(admin_client, good)
    response = install(admin_client, sha256_of(good))
    assert response.status_code == 409
    assert "Node 3 is Down: every node must answer its health checks before a software update" in text_of(response)
    assert not Rollout.objects.exists()


def test_ok_for_a_patch_that_is_not_kept_is_refused(admin_client, var_dir, good):
    a_cluster()
    response = install(admin_client, "0" * 64)
    assert response.status_code == 409
    assert "that software update is not on this unit: upload it again" in text_of(response)
    assert not Rollout.objects.exists()


def test_ok_starts_the_update_and_shows_cluster_control(admin_client, var_dir, good):
    a_cluster()
    upload(admin_client, good)
    response = install(admin_client, sha256_of(good))
    assert response.status_code == 302 and response.url == reverse("cluster_control")
    update = Rollout.objects.get()
    assert (update.version, update.state, update.nodes.count()) == ("1.1.0", "sending", 3)
    html = text_of(admin_client.get(reverse("cluster_control")))
    assert "Software update to version 1.1.0: Sending to the nodes" in html


def test_an_upload_while_another_update_is_in_progress_is_refused(admin_client, var_dir, good, tmp_path, key):
    a_cluster()
    upload(admin_client, good)
    install(admin_client, sha256_of(good))
    before = kept(var_dir)
    response = upload(admin_client, build(tmp_path, key, version="1.2.0", name="flotilla-1.2.0.patch"))
    assert response.status_code == 409
    assert (
        "The software update was refused: another software update (version 1.1.0) is in progress: finish or cancel it."
        in text_of(response)
    )
    assert kept(var_dir) == before
    second = install(admin_client, sha256_of(good))
    assert "another software update (version 1.1.0) is in progress" in text_of(second)
    assert Rollout.objects.count() == 1


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tampered(tmp_path, good):
    """One payload byte changed inside a well-formed archive."""
    tar_bytes = gzip.decompress(good.read_bytes())
    assert tar_bytes.count(b'VERSION = "1.1.0"') == 1
    path = tmp_path / "tampered.patch"
    path.write_bytes(gzip.compress(tar_bytes.replace(b'VERSION = "1.1.0"', b'VERSION = "1.1.9"')))
    return path


def not_a_patch(tmp_path, good):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not a patch at all")
    return path


def other_key(tmp_path, good):
    return build(tmp_path, patch.new_private_key(), name="other.patch")


def older(tmp_path, good):
    return build(tmp_path, patch.new_private_key(), version="1.0.0", name="old.patch")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (tampered, "The software update was refused: checksum mismatch for payload/nodes/agent.py"),
        (not_a_patch, "The software update was refused: not a firmware patch: the file is not gzip-compressed"),
        (other_key, "The software update was refused: signed by an unknown key"),
    ],
    ids=["tampered", "not-a-patch", "unknown-key"],
)
def test_a_bad_patch_is_refused_with_the_reason_and_nothing_is_kept(
    admin_client, var_dir, tmp_path, good, make, message
):
    response = upload(admin_client, make(tmp_path, good))
    assert response.status_code == 400
    assert message in text_of(response)
    assert "transferred and validated" not in text_of(response)
    assert kept(var_dir) == []


def test_an_older_version_is_refused_unless_a_downgrade_is_confirmed(admin_client, var_dir, tmp_path, key):
    old = build(tmp_path, key, version="1.0.0", name="old.patch")
    response = upload(admin_client, old)
    assert response.status_code == 400
    assert "version 1.0.0 is not newer than the running 1.0.0; confirm a downgrade to install it anyway" in text_of(
        response
    )
    assert kept(var_dir) == []
    response = upload(admin_client, old, allow_downgrade="1")
    assert response.status_code == 200 and "transferred and validated" in text_of(response)


def test_an_upload_over_the_limit_is_refused_with_413_before_it_is_read(admin_client, var_dir, tmp_path):
    path = tmp_path / "huge.patch"
    path.write_bytes(b"\x1f\x8b" + b"x" * (MAX_BYTES + 128 * 1024))
    response = upload(admin_client, path)
    assert response.status_code == 413
    assert "The file is too large: the upload is" in text_of(response)
    assert not (var_dir / "firmware" / "incoming").exists()  # the body was never parsed


def test_a_file_just_over_the_limit_is_refused_by_its_own_size(admin_client, var_dir, tmp_path):
    path = tmp_path / "big.patch"
    path.write_bytes(b"\x1f\x8b" + b"x" * MAX_BYTES)
    response = upload(admin_client, path)
    assert response.status_code == 400
    assert f"the file is {MAX_BYTES + 2} bytes, over the {MAX_BYTES} bytes limit" in text_of(response)
    assert kept(var_dir) == []


def test_an_upload_without_a_file_is_refused(admin_client, var_dir):
    response = admin_client.post(reverse("update_software"), {"action": "upload"})
    assert response.status_code == 400
    assert "Choose a software update file first." in text_of(response)


def test_the_upload_is_csrf_protected_even_with_its_own_upload_handlers(admin_user, var_dir, good):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert upload(client, good).status_code == 403
    assert kept(var_dir) == []


def test_a_trusted_key_from_the_settings_is_what_decides(admin_client, var_dir, good, settings):
    settings.FIRMWARE_TRUSTED_KEYS = [base64.b64encode(b"\0" * 32).decode()]
    response = upload(admin_client, good)
    assert response.status_code == 400 and "signed by an unknown key" in text_of(response)


@pytest.mark.browser
def test_an_operator_uploads_a_patch_in_the_browser(page, live_server, admin_user, var_dir, good):
    page.goto(live_server.url + reverse("update_software"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Update LoadMaster Software")).to_be_visible()
    with page.expect_file_chooser() as chooser:
        page.get_by_label("Software Update File").click()
    chooser.value.set_files(good)
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Update Cluster").click()
    expect(page.get_by_role("main")).to_contain_text("transferred and validated")
    expect(page.get_by_role("main")).to_contain_text("1.1.0")
    expect(page.get_by_role("button", name="OK")).to_be_visible()
    assert dialogs == ["Update the cluster's software with flotilla-1.1.0.patch? OK to continue."]


# --- the running version is what the nodes run ------------------------------------------


def running(versions_by_number):
    """A cluster whose nodes report these versions on their health checks."""
    a_cluster()
    for number, version in versions_by_number.items():
        Node.objects.filter(number=number).update(version=version)


def test_once_every_node_runs_the_new_version_it_is_the_running_one(admin_client, var_dir, good):
    running({1: "1.1.0", 2: "1.1.0", 3: "1.1.0"})
    html = text_of(admin_client.get(reverse("update_software")))
    assert "Running version: 1.1.0." in html
    assert "the running 1.1.0)" in html  # the downgrade box names it too
    response = upload(admin_client, good)  # the patch every node already runs
    assert response.status_code == 400
    assert "version 1.1.0 is not newer than the running 1.1.0; confirm a downgrade to install it anyway" in (
        text_of(response)
    )
    assert kept(var_dir) == []


def test_during_an_update_the_page_says_which_nodes_run_which_version(admin_client, var_dir, tmp_path, key):
    running({1: "1.0.0", 2: "1.1.0", 3: "1.0.0"})
    html = text_of(admin_client.get(reverse("update_software")))
    assert "Running version: 1.0.0 (the lowest any node runs: 1.0.0 on nodes 1, 3; 1.1.0 on node 2)." in html
    # A cluster is as new as its oldest node: 1.1.0 is still an upgrade for it.
    response = upload(admin_client, build(tmp_path, key, version="1.1.0", name="again.patch"))
    assert response.status_code == 200 and "transferred and validated" in text_of(response)


def test_a_backup_is_stamped_with_the_version_the_cluster_runs(var_dir):
    running({1: "1.2.0", 2: "1.1.0", 3: "1.1.0"})
    with tarfile.open(fileobj=io.BytesIO(backup.build()), mode="r:gz") as archive:
        header = json.loads(archive.extractfile("header.json").read())
    assert header["product_version"] == "1.1.0"


def test_a_standalone_unit_runs_its_own_version(settings, tmp_path, monkeypatch, db):
    running({1: "1.0.0", 2: "1.0.0", 3: "1.0.0"})  # what a shared address would see
    home = tmp_path / "unit"
    home.mkdir()
    (home / "version.json").write_text('{"version": "1.3.0"}')
    monkeypatch.setenv("NODE_HOME", str(home))
    settings.FLOTILLA_ROLE = "node"
    assert versions.cluster_version() == "1.3.0"
    assert versions.describe() == "1.3.0"
