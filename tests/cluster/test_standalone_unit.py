"""A standalone unit is a whole unit: its own Virtual Services and software update, on its own WUI.

Against the real units: each unit's own WUI (gunicorn, its own SQLite), its real agent and state.
A unit in a cluster changes nothing through these pages and points to the shared address.
"""

import hashlib
import json
import pwd
import sqlite3
from contextlib import closing

import pytest
from playwright.sync_api import expect

from firmware import patch
from nodes.agent.build import AGENT_PAYLOAD, build_zipapp, version_of
from tests.helpers import ADMIN_PASSWORD, SHARED, unit_state, wait_until

pytestmark = pytest.mark.browser
MAX_BYTES = 2 * 2**20  # the units' limit for a software update in these tests


def log_in(page, url):
    page.goto(url)
    if "/login/" in page.url:
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Main menu")).to_be_visible()


def menu(page, name):
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name=name).click()


def applied_services(unit):
    return (unit_state(unit, "config.json").get("config") or {}).get("virtual_services")


def rows_in_database(unit, table):
    with closing(sqlite3.connect(unit.root / "wui.sqlite3")) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608  (a fixed table name)


def csrf_post(page, url, **body):
    """A form posted with the page's session, as a browser that skips the page's own controls would."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    key = "multipart" if "multipart" in body else "form"
    # Over HTTPS Django's CSRF check also wants the origin a browser sends with a form.
    headers = {"Referer": url}
    return page.request.post(url, headers=headers, **{key: {**body[key], "csrfmiddlewaretoken": token}})


def build_patch(path, version, key):
    payload = path.parent / f"payload-{version}"
    (payload / "bin").mkdir(parents=True)
    build_zipapp(payload / AGENT_PAYLOAD, version)
    patch.build(path, payload, version, key)
    return path


@pytest.fixture
def trusting_unit(units):
    """Unit 3, standalone, whose WUI trusts a signing key of this test."""
    key = patch.new_private_key()
    unit = units.node(3)
    before = dict(units.wui_env)
    units.wui_env["FIRMWARE_TRUSTED_KEYS"] = patch.public_key_text(key)
    units.wui_env["FIRMWARE_MAX_BYTES"] = str(MAX_BYTES)
    try:
        unit.restart()
        yield unit, key
    finally:
        units.wui_env.clear()
        units.wui_env.update(before)


def apply_cluster_configuration(unit, generation):
    """What the cluster's pushes leave on a unit: the cluster's document, at the cluster's generation."""
    document = {
        "schema": 1,
        "cluster": {"shared_address": SHARED, "virtual_id": 1, "drain_time": 10},
        "nodes": [{"id": 4, "address": unit.address, "enabled": True}],
        "network": {},
        "virtual_services": [
            {
                "name": "web",
                "address": SHARED,
                "port": 80,
                "protocol": "tcp",
                "layer": 7,
                "enabled": True,
                "real_servers": [{"address": "127.0.11.20", "port": 8080, "weight": 1000, "enabled": True}],
            }
        ],
    }
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    unit.agent("apply-config", json.dumps({"generation": generation, "sha256": digest, "config": document}))


@pytest.fixture
def member_unit(units):
    """Unit 4 as a cluster's member (the cluster told it so), with the cluster's Virtual Service applied."""
    unit = units.node(4)
    unit.agent("membership", "member", SHARED)
    apply_cluster_configuration(unit, 7)
    return unit


def test_a_standalone_unit_changes_its_own_virtual_services_and_applies_them(page, units):
    unit = units.node(2)
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, unit.wui_url + "/")
    menu(page, "View/Modify Services")
    expect(page.get_by_role("heading", name="Virtual Services")).to_be_visible()

    # What a cluster refuses (Layer 4, transparency, a real server outside every node's subnet) a
    # standalone unit runs: its own database says it is not a cluster.
    page.get_by_role("link", name="Add New Virtual Service").click()
    page.get_by_label("Service Name").fill("web")
    page.get_by_label("Virtual Address").fill("10.0.0.90")
    page.get_by_label("Port", exact=True).fill("80")
    page.get_by_label("Layer").select_option("Layer 4")
    page.get_by_label("Transparency").check()
    page.get_by_role("button", name="Add this Virtual Service").click()
    expect(page.get_by_role("status")).to_have_text(
        "Virtual Service web (10.0.0.90:80) created. Add its real servers below."
    )
    page.get_by_label("Real Server Address").fill("192.168.50.7")
    page.get_by_label("Real Server Port").fill("8080")
    page.get_by_role("button", name="Add Real Server").click()
    expect(page.get_by_role("status")).to_have_text(
        "Real server 192.168.50.7:8080 added to Virtual Service web (10.0.0.90:80)."
    )

    # The unit applied what it committed: its configuration document says so.
    services = wait_until(lambda: (s := applied_services(unit)) and s[0]["real_servers"] and s, 10)
    assert [(s["name"], s["address"], s["port"], s["layer"], s["transparency"]) for s in services] == [
        ("web", "10.0.0.90", 80, 4, True)
    ]
    assert services[0]["real_servers"] == [{"address": "192.168.50.7", "port": 8080, "weight": 1000, "enabled": True}]

    # The same rules as the shared WUI: a duplicate endpoint is refused and nothing is applied.
    generation = unit_state(unit, "config.json")["generation"]
    page.get_by_role("link", name="All Virtual Services").click()
    page.get_by_role("link", name="Add New Virtual Service").click()
    page.get_by_label("Service Name").fill("again")
    page.get_by_label("Virtual Address").fill("10.0.0.90")
    page.get_by_label("Port", exact=True).fill("80")
    page.get_by_role("button", name="Add this Virtual Service").click()
    expect(page.get_by_role("alert")).to_contain_text("10.0.0.90:80 is already used by Virtual Service web")
    assert unit_state(unit, "config.json")["generation"] == generation

    page.goto(unit.wui_url + "/virtual-services/")
    page.get_by_role("button", name="Delete Virtual Service web (10.0.0.90:80)").click()
    expect(page.get_by_role("status")).to_have_text("Virtual Service web (10.0.0.90:80) deleted.")
    wait_until(lambda: applied_services(unit) == [], 10)


def test_a_standalone_unit_updates_its_own_software_and_runs_it_after_its_reboot(page, trusting_unit, tmp_path):
    unit, key = trusting_unit
    good = build_patch(tmp_path / "good.patch", "1.1.0", key)
    forged = build_patch(tmp_path / "forged.patch", "1.2.0", patch.new_private_key())
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, unit.wui_url + "/")
    menu(page, "Update Software")
    expect(page.get_by_text("Running version: 1.0.0.")).to_be_visible()

    # Over the limit: refused before the body is read.
    file = {"name": "big.patch", "mimeType": "application/octet-stream", "buffer": b"\0" * (MAX_BYTES + 2**17)}
    response = csrf_post(page, unit.wui_url + "/update-software/", multipart={"action": "upload", "patch": file})
    assert response.status == 413
    assert "The file is too large" in response.text()

    # A patch signed by a key the unit does not trust is refused and not kept.
    page.get_by_label("Software Update File").set_input_files(forged)
    page.get_by_role("button", name="Update Software").click()
    expect(page.get_by_role("alert")).to_contain_text("The software update was refused:")
    assert list((unit.home / "incoming").iterdir()) == []

    page.get_by_label("Software Update File").set_input_files(good)
    page.get_by_role("button", name="Update Software").click()
    expect(page.get_by_role("status").first).to_have_text(
        "The software update flotilla 1.1.0 was transferred and validated."
    )
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    assert [p.name for p in (unit.home / "incoming").iterdir()] == [f"{digest}.patch"]

    page.get_by_role("button", name="OK").click()
    installed = "The new software (version 1.1.0) has been installed. Reboot the unit to activate it."
    expect(page.get_by_role("status").first).to_have_text(installed)
    assert unit.agent("status")["version"] == "1.0.0"  # not before the reboot
    assert unit_state(unit, "slots.json")["pending_version"] == "1.1.0"
    # Left to the node's own user, as the cluster's updates would leave them, should it join one.
    owner = pwd.getpwnam(unit.user).pw_uid
    assert {p.stat().st_uid for p in [unit.home / "incoming", *(unit.home / "slots").rglob("*")]} == {owner}

    page.get_by_role("button", name="Reboot").click()
    expect(page.get_by_text("The unit is rebooting.")).to_be_visible()
    wait_until(lambda: unit_state(unit, "version.json").get("version") == "1.1.0", 30)
    unit.settle()
    assert unit.agent("status")["version"] == "1.1.0"
    assert version_of(unit.home / "bin" / "flotilla-agent") == "1.1.0"

    log_in(page, unit.wui_url + "/update-software/")
    expect(page.get_by_text("Running version: 1.1.0.")).to_be_visible()
    expect(page.get_by_text("has been installed")).to_have_count(0)


def test_a_member_units_own_pages_show_the_cluster_and_change_nothing(page, member_unit, tmp_path):
    unit = member_unit
    log_in(page, unit.wui_url + "/virtual-services/")
    note = page.get_by_role("note")
    expect(note).to_contain_text(f"This unit is a member of the cluster at {SHARED}")
    expect(note.get_by_role("link", name=f"https://{SHARED}:8000/virtual-services/")).to_be_visible()
    row = page.locator(f'tr[data-vs="{SHARED}:80"]')
    expect(row.locator("td")).to_have_text([f"{SHARED}:80", "TCP", "web", "L7", "Enabled", "1"])
    expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)
    expect(page.get_by_role("link", name="Add New Virtual Service")).to_have_count(0)

    form = {"name": "local", "address": "10.0.0.91", "port": "80", "protocol": "tcp", "layer": "4"}
    form |= {"scheduling": "rr", "persistence": "none", "persistence_timeout": "360", "check_url": "/"}
    form |= {"check_status": "200", "interface": "eth0", "enabled": "on"}
    response = csrf_post(page, unit.wui_url + "/virtual-services/add", form=form)
    assert response.status == 403
    assert "Nothing was changed" in response.text()
    assert rows_in_database(unit, "cluster_virtualservice") == 0
    assert unit_state(unit, "config.json")["generation"] == 7

    page.goto(unit.wui_url + "/update-software/")
    expect(page.get_by_role("note")).to_contain_text("the cluster's software is updated on its shared address")
    expect(page.get_by_role("link", name=f"https://{SHARED}:8000/update-software/")).to_be_visible()
    expect(page.get_by_label("Software Update File")).to_have_count(0)
    upload = tmp_path / "any.patch"
    upload.write_bytes(b"not looked at")
    file = {"name": "any.patch", "mimeType": "application/octet-stream", "buffer": upload.read_bytes()}
    response = csrf_post(page, unit.wui_url + "/update-software/", multipart={"action": "upload", "patch": file})
    assert response.status == 403
    assert not (unit.home / "incoming").exists() or list((unit.home / "incoming").iterdir()) == []
    assert unit_state(unit, "slots.json") == {}


def test_a_unit_deleted_from_a_cluster_applies_its_own_changes(page, units):
    unit = units.node(2)
    # A member running the cluster's document at the cluster's generation, then deleted from it.
    unit.agent("membership", "member", SHARED)
    apply_cluster_configuration(unit, 7)
    unit.agent("leave-cluster")
    assert unit.agent("status")["mode"] == "standalone"
    log_in(page, unit.wui_url + "/virtual-services/add")
    page.get_by_label("Service Name").fill("own")
    page.get_by_label("Virtual Address").fill("10.0.0.91")
    page.get_by_label("Port", exact=True).fill("80")
    page.get_by_role("button", name="Add this Virtual Service").click()
    expect(page.get_by_role("status")).to_have_text(
        "Virtual Service own (10.0.0.91:80) created. Add its real servers below."
    )
    wait_until(
        lambda: [s["name"] for s in applied_services(unit)] == ["own"],
        5,
        message=lambda: f"applied generation {unit_state(unit, 'config.json').get('generation')}",
    )
