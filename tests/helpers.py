"""What the tests share: constants, waits, process checks and the steps of the operator's flows.

Fixtures live in tests/conftest.py (and a directory's own conftest.py for what only it uses); every
helper a test module uses from elsewhere lives here, so that no test module imports another.
"""

import base64
import contextlib
import hashlib
import html
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Max, Min, Q
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from cluster import clock
from cluster.backup import rules as backup
from cluster.configuration import rules as config
from cluster.membership.rules import node_rows
from cluster.membership.status import Status
from cluster.models import (
    Cluster,
    ConfigGeneration,
    Event,
    Interface,
    JoinRequest,
    Node,
    RealServer,
    Rollout,
    RolloutNode,
    VirtualService,
)
from cluster.network import document as network
from firmware import patch
from nodes.agent.build import AGENT_PAYLOAD, PACKAGE, build_zipapp
from tests.harness import BASE_DIR
from wui.celery import app

# The demo uses 127.0.10 and the benches 127.0.12: all can run at once (two suites too, on two prefixes).
TEST_PREFIX = os.environ.get("FLOTILLA_TEST_PREFIX", "127.0.11")


ADMIN_PASSWORD = "correct-horse-battery"


class Worker:
    """A real Celery worker process on the real broker; it can be killed and started again.

    It runs in a process group of its own (with its scheduler, when started with -B), and never
    leaves a process of that group behind when it is killed or stopped.
    """

    def __init__(self, argv, env, log_path, name):
        self.argv, self.env, self.log_path, self.name = argv, env, log_path, name
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_worker(self.proc, self.log_path, self.name)
        except BaseException:
            self.kill()
            raise

    def kill(self):
        """As a crash would: no warm shutdown, the task in hand is lost; its scheduler dies with it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._nothing_left("killed")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._nothing_left("stopped")

    def _nothing_left(self, how):
        """The worker's own processes end with it (the product's promise); never let one run on."""
        group = self.proc.pid
        deadline = time.monotonic() + 10
        while (left := group_members(group)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            kill_group(group)
            raise AssertionError(f"the worker was {how} but its processes ran on: {describe(left)}")


def wait_for_worker(proc, log_path, name):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited: {log_path.read_text()[-2000:]}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError("celery worker did not answer a ping within 30 s")


def proc_stat(pid):
    """(state, ppid, process group, start time in clock ticks) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def alive(pid):
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in "ZX"


def running_pids():
    for entry in os.listdir("/proc"):
        if entry.isdigit() and alive(int(entry)):
            yield int(entry)


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def describe(pids):
    return "; ".join(f"{pid}: {cmdline(pid)}" for pid in pids)


def children_of(pid):
    return [p for p in running_pids() if (stat := proc_stat(p)) and stat[1] == pid]


def group_members(group):
    return [p for p in running_pids() if (stat := proc_stat(p)) and stat[2] == group]


def kill_group(group):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def wait_until(predicate, timeout=10.0, interval=0.05, message=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s" + (f": {message()}" if message else ""))


# --- a cluster of the harness's units (admin unit 1 on SHARED) ---------------------------------------


SHARED = f"{TEST_PREFIX}.90"


def add(client, unit, settle=True, **extra):
    """Add New Node with the code the unit shows after Add to Cluster; returns the finished request."""
    code = extra.pop("code", None) or unit.agent("offer-join")["code"]
    response = client.post(reverse("add_node"), {"address": unit.address, "code": code, **extra})
    assert response.status_code == 302, response.content.decode()
    join = wait_until(
        lambda: JoinRequest.objects.filter(address=unit.address).exclude(state=JoinRequest.State.PENDING).first(), 20
    )
    if settle:
        unit.settle()  # the reboot that finishes the conversion
    return join


def add_enabled(client, unit):
    join = add(client, unit)
    assert join.state == JoinRequest.State.DONE, join.message
    node = Node.objects.get(address=unit.address)
    client.post(reverse("node_action", args=[node.pk, "enable"]))
    return node


def add_all_enabled(client, units):
    """Add and enable these units, in order (node numbers follow it), their reboots overlapping."""
    joins = [add(client, unit, settle=False) for unit in units]
    for unit in units:
        unit.settle()
    nodes = []
    for unit, join in zip(units, joins, strict=True):
        assert join.state == JoinRequest.State.DONE, join.message
        node = Node.objects.get(address=unit.address)
        client.post(reverse("node_action", args=[node.pk, "enable"]))
        nodes.append(node)
    return nodes


def health_rounds_completed(since, rounds=2, timeout=15):
    """Wait until whole health rounds ran after ``since``, acting (log lines, reconcile, the
    rollout's advance) on what the database said by then.

    A round records every node's check (``checked_at``), then acts; the next round starts only
    once it has ended. So once every node's check is later than the newest check seen before, a
    round has ended whose checks all came after the previous mark.
    """
    mark = since
    for _ in range(rounds):

        def later(mark=mark):
            checks = Node.objects.filter(removing=False).aggregate(oldest=Min("checked_at"), newest=Max("checked_at"))
            return checks["oldest"] is not None and checks["oldest"] > mark and checks["newest"]

        mark = wait_until(later, timeout, message=lambda: str(list(Node.objects.values("number", "checked_at"))))
    return mark


# --- the clock ---------------------------------------------------------------------------------------


def advance(seconds):
    """Move the control plane's clock on by ``seconds``, for this process and the worker at once
    (cluster/clock.py); returns the clock's time just after the move.

    Every node's last answer then looks that much older, so until the next health round
    records them they look Down: wait for it (move_clock) before looking at a status.
    """
    path = Path(settings.CLOCK_OFFSET_FILE)
    offset = clock.offset().total_seconds() + seconds
    new = path.with_name(path.name + ".new")
    new.write_text(repr(offset))
    new.replace(path)  # whole: the worker never reads half a number
    moved = clock.now()
    assert moved - timezone.now() >= timedelta(seconds=offset - 1), "the clock did not move"
    return moved


def move_clock(seconds):
    """The clock moved on, and a health round that began after the move has checked every node.

    A round reads the clock's offset once, when it begins: the one running at the move may still
    record checks later than the moved time on the clock it began with. The round after it began
    on the moved clock; two whole rounds after the moved time prove it ran (health_rounds_completed).
    """
    moved = advance(seconds)
    health_rounds_completed(since=moved, rounds=2)
    return moved


def in_warm_up(rows):
    """{node number: whole seconds of its warm-up left} for the nodes Starting on a warm-up that a
    move of the clock can end: the first Virtual Service noted by a round (that round starts the
    warm-up again), the node answering since its warm-up started."""
    cluster, rows, has_vs = rows
    if has_vs and cluster.services_since is None:
        return {}
    return {r["node"].number: r["warm_up_left"] for r in rows if r["status"] == Status.STARTING and r["warm_up_left"]}


def past_warm_up(number, timeout=15):
    """The clock moved just past node ``number``'s warm-up (once it is Starting on it), and a
    health round has seen the move."""
    left = wait_until(
        lambda: in_warm_up(node_rows()).get(number),
        timeout,
        message=lambda: str([(r["node"].number, r["status"], r["warm_up_left"]) for r in node_rows()[1]]),
    )
    move_clock(left + 1)


# Add a Virtual Service with every field as the form posts it (a test changes what it needs).
VS_FORM = {
    "name": "web",
    "port": "80",
    "protocol": "tcp",
    "layer": "7",
    "scheduling": "rr",
    "persistence": "none",
    "persistence_timeout": "360",
    "subnet_originating": "on",
    "check_url": "/",
    "check_status": "200",
    "interface": "eth0",
    "enabled": "on",
}


def wait_applied(timeout=15):
    """Every node has applied the newest configuration generation (and reloaded HAProxy for it)."""
    newest = config.latest_number()
    wait_until(
        lambda: not Node.objects.filter(Q(applied_generation__lt=newest) | ~Q(config_error="")).exists(),
        timeout,
        message=lambda: str(list(Node.objects.values_list("number", "applied_generation", "config_error"))),
    )


def set_drain_time(seconds):
    """The Node Drain Time, changed through the configuration's write path (it is in the document) and
    applied on every node: set behind its back, the health round's reconcile commits a generation of
    its own later, and a software update finds the nodes out of sync."""
    with config.change():
        Cluster.objects.update(drain_time=seconds)
    wait_applied()


def fetch_service(path="/", address=None, port=80):
    """One request to the Virtual Service on a new connection, as a browser opening the site would."""
    with urllib.request.urlopen(f"http://{address or SHARED}:{port}{path}", timeout=5) as response:
        return response.read().decode()


def with_virtual_service():
    return VirtualService.objects.get_or_create(name="web", address=SHARED, port=80)[0]


def unit_state(unit, name):
    try:
        return json.loads((unit.home / name).read_text())
    except (OSError, ValueError):
        return {}


# --- browsers ----------------------------------------------------------------------------------------


SHARED_URL = f"https://{SHARED}:8000"


def log_in(page, url):
    page.goto(url)
    if "/login/" in page.url:
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()


def choose_clustering(page, unit):
    log_in(page, unit.wui_url + "/ha-clustering/")
    page.get_by_label("Clustering").check()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Cluster Control")).to_be_visible()


def row(page, number):
    return page.locator(f'tr[data-node="{number}"]')


FAR = timedelta(hours=1)


def listed_node(number, **facts):
    return Node.objects.create(
        number=number, address=f"10.9.0.{number}", ssh_user=f"lb{number}", host_key="ssh-ed25519 AAAA", **facts
    )


def every_status():
    """One node in each status, held there: the health facts are dated so that no second moves them.

    Starting counts its seconds down, so that table changes every second.
    """
    now = timezone.now()
    Cluster.objects.update_or_create(pk=1, defaults={"services_since": now - FAR, "checks_since": now + FAR})
    VirtualService.objects.create(name="web", address="10.9.0.90", port=80)
    answering = {"enabled": True, "accepting": True, "last_ok_at": now + FAR, "checked_at": now + 2 * FAR}
    return {
        "admin": listed_node(1, is_admin=True, enabled=True),
        "up": listed_node(2, healthy_since=now - FAR, **answering),
        "starting": listed_node(3, healthy_since=now + FAR, **answering),
        "down": listed_node(4, enabled=True, checked_at=now + 2 * FAR, failures=3),
        "draining": listed_node(5, disabled_at=now + FAR),
        "disabled": listed_node(6),
        "checking": listed_node(7, enabled=True),
    }


def log_in_and_wait(page, url):
    page.goto(url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


# --- backups: cluster rows made in the database, files made and edited -------------------------------


BACKUP_SHARED = "10.0.0.90"


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
    cluster.mode, cluster.shared_address = Cluster.Mode.CLUSTERING, BACKUP_SHARED
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
    web = VirtualService.objects.create(name="web", address=BACKUP_SHARED, port=80)
    RealServer.objects.create(virtual_service=web, address="10.0.0.11", port=8080)
    RealServer.objects.create(virtual_service=web, address="10.0.0.12", port=8080, weight=500)
    VirtualService.objects.create(name="api", address=BACKUP_SHARED, port=443, scheduling="lc", persistence="source_ip")
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


def choose(client, response, action):
    page = text_of(response)
    token = re.search(r'name="token" value="([0-9a-f]{64})"', page).group(1)
    digest = re.search(r'name="report" value="([0-9a-f]{64})"', page).group(1)
    return client.post(reverse("backup_restore"), {"action": action, "token": token, "report": digest})


# --- software updates --------------------------------------------------------------------------------


NEW = "1.1.0"


def build(tmp_path, key, version=NEW, edit=None):
    """A patch carrying this product's agent at another version (``edit(module, source)`` changes it further)."""
    payload = tmp_path / f"payload-{version}"
    (payload / "bin").mkdir(parents=True, exist_ok=True)
    source = tmp_path / f"agent-{version}"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    for module in source.glob("*.py") if edit else ():
        module.write_text(edit(module.name, module.read_text()))
    build_zipapp(payload / AGENT_PAYLOAD, version, source=source)
    path = tmp_path / f"flotilla-{version}.patch"
    patch.build(path, payload, version, key)
    return path


def all_up(timeout=30):
    """Every node Up: the clock moved past the warm-up of the nodes still in theirs (just past the
    longest), and a health round has checked them on the moved clock."""

    def up():
        rows = node_rows()
        if all(r["status"] in (Status.UP, Status.ADMIN) and healthy(r["node"]) for r in rows[1]):
            return True
        if warming := in_warm_up(rows):
            move_clock(max(warming.values()) + 1)
        return False

    wait_until(up, timeout, message=lambda: str([(r["node"].number, r["status"]) for r in node_rows()[1]]))


def start_rolling(client):
    """Rolling Reboot once every node is Up: a health round may still move a warm-up start (the
    first Virtual Service noted, an older fact written back) between all_up() and the click."""

    def attempt():
        all_up()
        response = client.post(reverse("rollout_action", args=["rolling"]), follow=True)
        return response if response.status_code == 200 else None

    return wait_until(attempt, 30)


def healthy(node):
    return not node.failures and node.last_ok_at and clock.now() - node.last_ok_at < timedelta(seconds=3)


def said(response):
    """The page's messages and errors, as the operator reads them."""
    pattern = r'<(?:p|div)[^>]*(?:class="message|role="alert")[^>]*>(.*?)</(?:p|div)>'
    found = re.findall(pattern, response.content.decode(), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", text)).strip() for text in found]


def install(client, path):
    response = client.post(
        reverse("update_software"), {"patch": SimpleUploadedFile(path.name, path.read_bytes()), "action": "upload"}
    )
    assert "transferred and validated" in response.content.decode(), response.content.decode()[-2000:]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    response = client.post(reverse("update_software"), {"action": "install", "patch": digest})
    assert response.status_code == 302, re.findall(r'role="alert">([^<]*)<', response.content.decode())
    return response


def settled_rollout(timeout=60):
    return wait_until(
        lambda: Rollout.objects.exclude(state=Rollout.State.SENDING).first(),
        timeout,
        message=lambda: str(list(RolloutNode.objects.values("node__number", "state", "sent", "message"))),
    )


def version_of(number):
    node = Node.objects.get(number=number)
    return node.version if healthy(node) else None


def reboot(client, number):
    node = Node.objects.get(number=number)
    return client.post(reverse("node_action", args=[node.pk, "reboot"]), follow=True)


def roll(client, four, check=None, timeout=120):
    """Let the rolling reboot run to its end, moving the clock past each node's warm-up once: its
    own timeouts count on the same clock, so it is moved on no further than a warm-up needs."""
    deadline = time.monotonic() + timeout
    warmed = set()  # the warming steps the clock was moved for: (node, since when)
    while time.monotonic() < deadline:
        update = Rollout.objects.get()
        if update.state != Rollout.State.ROLLING:
            return update
        step = (update.current_id, update.step_at)
        warming = update.step == Rollout.Step.WARMING and update.current_id and step not in warmed
        # None while the node is not Starting on its warm-up yet (or takes no traffic: no warm-up to wait for).
        left = warming and in_warm_up(node_rows()).get(update.current.number)
        if left:
            move_clock(left + 1)
            warmed.add(step)
        if check:
            check()
        time.sleep(0.05)
    raise AssertionError(f"the rolling reboot did not end within {timeout} s: {Rollout.objects.values().get()}")


def reboot_order():
    return [
        e.node_number for e in Event.objects.filter(message__contains="reboots to run version").order_by("time", "id")
    ]
