"""The unit's join endpoint over HTTP on a real unit: attempts counted exactly, malformed codes refused,
joins that can be repeated and undone, and a unit that is never left half-joined."""

import hashlib
import http.cookiejar
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cluster import ssh
from nodes import agent
from tests.harness import SSH_PORT, https_context
from tests.helpers import ADMIN_PASSWORD, SHARED


@pytest.fixture
def unit(harness, monkeypatch):
    """Unit 2 as a fresh standalone machine; the agent library in this process reads its state."""
    unit = harness.node(2)
    unit.factory_reset(only_if_changed=True)
    monkeypatch.setenv("NODE_HOME", str(unit.home))
    return unit


@pytest.fixture
def cluster_key(tmp_path):
    """A cluster's own key pair, not the one the harness installed: what the unit does with it is visible."""
    key = ssh.load_or_create_key(tmp_path / "cluster_key")
    pool = ssh.Pool(key, connect_timeout=2, command_timeout=5)
    yield ssh.public_key_line(key, "other-cluster"), pool
    pool.close_all()


def post(unit, payload):
    request = urllib.request.Request(
        f"{unit.wui_url}/cluster/join",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=https_context(unit.ca_file)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def wrong_code_for(code):
    return "AAAA-AAAA" if code != "AAAA-AAAA" else "BBBB-BBBB"


def authorized(unit):
    return (unit.home / ".ssh" / "authorized_keys").read_text().splitlines()


def status_over_ssh(unit, pool):
    target = ssh.Target(f"unit {unit.n}", unit.address, SSH_PORT, unit.user, unit.host_key_line)
    pool.drop(target)  # a fresh login each time: the key is checked when one logs in
    return pool.run(target, "status")


def accept(unit, code, key):
    return post(unit, {"code": code, "cluster_key": key, "shared_address": SHARED})


def test_forty_wrong_codes_at_once_are_judged_five_times_then_the_offer_is_withdrawn(unit, cluster_key):
    offer = unit.agent("offer-join")
    wrong = wrong_code_for(offer["code"])
    start = threading.Barrier(40)
    answers = []

    def guess(i):
        start.wait()
        payload = {"code": wrong, "check": True} if i % 2 else {"code": wrong, "cluster_key": cluster_key[0]}
        answers.append(post(unit, {**payload, "shared_address": SHARED}))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    judged = [a for a in answers if a == (403, {"error": "the join code is wrong"})]
    withdrawn = [a for a in answers if a[0] == 409 and "not waiting to join" in a[1]["error"]]
    assert (len(judged), len(withdrawn)) == (agent.JOIN_ATTEMPTS, 40 - agent.JOIN_ATTEMPTS), answers
    assert json.loads((unit.home / "join.json").read_text())["attempts"] == agent.JOIN_ATTEMPTS
    status, answer = post(unit, {"code": offer["code"], "check": True})
    assert status == 409 and "not waiting to join" in answer["error"]
    assert agent.read_log()[0]["message"] == "5 wrong join codes: no longer waiting to join a cluster"


@pytest.mark.parametrize(
    "code,reason",
    [
        ("ÄBCD-EFGH", "the join code has a character that is not ASCII"),
        ("Ä" * 9, "the join code has a character that is not ASCII"),
        ("A" * 4000, "the join code has 4000 characters"),
        ("AB<script", "the join code must be 4 of A-Z and 2-7"),
        (12345678, "the join code must be text, not a number"),
        (None, "the join code must be text, not null"),
    ],
)
def test_a_malformed_code_is_refused_with_the_reason_and_not_counted(unit, code, reason):
    offer = unit.agent("offer-join")
    for extra in ({"check": True}, {"cluster_key": "ssh-ed25519 x", "shared_address": SHARED}, {"abort": True}):
        status, answer = post(unit, {"code": code, **extra})
        assert status == 400
        assert answer["error"].startswith(reason)
        assert len(answer["error"]) < 200  # never the whole value
    assert json.loads((unit.home / "join.json").read_text())["attempts"] == 0
    assert post(unit, {"code": offer["code"], "check": True})[0] == 200


def test_a_repeated_accept_gives_the_same_answer_while_the_unit_is_joining(unit, cluster_key, tmp_path):
    """A control plane whose worker died after the accept asks again and is answered, never stranded."""
    key, pool = cluster_key
    code = unit.agent("offer-join")["code"]
    assert post(unit, {"code": code, "check": True})[0] == 200
    status, first = accept(unit, code, key)
    assert status == 200 and first["host_key"] == unit.host_key_line
    assert accept(unit, code, key) == (200, first)
    assert post(unit, {"code": code, "check": True}) == (200, first)

    state = json.loads((unit.home / "membership.json").read_text())
    assert state["mode"] == "joining" and state["code_sha256"] == hashlib.sha256(code.encode()).hexdigest()
    assert code not in (unit.home / "membership.json").read_text()
    assert status_over_ssh(unit, pool)["mode"] == "joining"  # the cluster's key is authorised

    other_key = ssh.public_key_line(ssh.load_or_create_key(tmp_path / "stranger"), "stranger")
    status, answer = accept(unit, code, other_key)
    assert (status, answer) == (
        403,
        {"error": "this unit is joining a cluster with another SSH key: it keeps that one"},
    )
    status, answer = accept(unit, wrong_code_for(code), key)
    assert status == 409 and "with another code" in answer["error"]
    assert [line.split()[1] for line in authorized(unit)].count(key.split()[1]) == 1


def test_abort_forgets_exactly_the_clusters_key_and_the_unit_is_standalone(unit, cluster_key):
    key, pool = cluster_key
    before = authorized(unit)
    code = unit.agent("offer-join")["code"]
    assert accept(unit, code, key)[0] == 200
    assert authorized(unit) == [*before, key]

    status, answer = post(unit, {"code": wrong_code_for(code), "abort": True})
    assert status == 403 and unit.membership()["mode"] == "joining"
    assert post(unit, {"code": code, "abort": True}) == (200, {"mode": "standalone"})
    assert authorized(unit) == before
    assert unit.membership() == {"mode": "standalone"}
    with pytest.raises(ssh.AuthenticationFailed):
        status_over_ssh(unit, pool)
    assert agent.read_log()[0]["message"] == f"Join undone by the cluster at {SHARED}: standalone again"

    assert post(unit, {"code": code, "abort": True}) == (200, {"mode": "standalone"})  # again: nothing to undo
    status, answer = accept(unit, code, key)
    assert status == 409 and "not waiting to join" in answer["error"]  # the code is spent
    assert authorized(unit) == before


class Browser:
    """An operator on the unit's own WUI: logged in, with the session and CSRF cookies."""

    def __init__(self, unit):
        self.base = unit.wui_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.HTTPSHandler(context=https_context(unit.ca_file)),
        )
        self.get("/login/")
        assert "/login/" not in self.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})[0]

    def get(self, path):
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def poll(self, path):
        """What htmx asks every 2 s: the headers of the answer tell it whether to reload the whole page."""
        request = urllib.request.Request(self.base + path, headers={"HX-Request": "true"})
        with self.opener.open(request, timeout=10) as response:
            return response.headers, response.read().decode()

    def post(self, path, form):
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": token}).encode()
        # Over HTTPS Django's CSRF check also wants the page the form came from, as a browser sends it.
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=10) as response:
            return response.url, response.read().decode()


def test_a_join_the_cluster_never_finishes_is_undone_after_the_window(unit, cluster_key):
    """The control plane died for good: past JOIN_WINDOW the unit forgets the key and shows its full menu."""
    key, pool = cluster_key
    before = authorized(unit)
    browser = Browser(unit)
    browser.post("/ha-clustering/", {"mode": "clustering"})
    _, page = browser.post("/cluster-control/add-to-cluster", {})
    code = re.search(r'data-testid="join-code">([A-Z2-7-]+)<', page)[1]
    assert accept(unit, code, key)[0] == 200
    page = browser.get("/cluster-control/")
    assert f'Joining the cluster at <a href="https://{SHARED}:8000/">{SHARED}</a>' in page
    assert "Add to Cluster" not in page and 'href="/backup-restore/"' not in page
    assert "/cluster-control/?was=joining" in page
    assert browser.poll("/cluster-control/?was=standalone")[0]["HX-Refresh"] == "true"  # the menu changed
    headers, part = browser.poll("/cluster-control/?was=joining")
    assert "HX-Refresh" not in headers and "Joining the cluster" in part

    accepted_at = json.loads((unit.home / "membership.json").read_text())["accepted_at"]
    assert agent.status(now=accepted_at + agent.JOIN_WINDOW)["mode"] == "joining"
    assert status_over_ssh(unit, pool)["mode"] == "joining"
    assert agent.status(now=accepted_at + agent.JOIN_WINDOW + 1)["mode"] == "standalone"

    assert authorized(unit) == before
    with pytest.raises(ssh.AuthenticationFailed):
        status_over_ssh(unit, pool)
    assert agent.read_log()[0]["message"] == "Join not completed by the cluster within 600 s: standalone again"
    assert browser.poll("/cluster-control/?was=joining")[0]["HX-Refresh"] == "true"
    page = browser.get("/cluster-control/")
    assert "Joining the cluster" not in page
    assert "Add to Cluster" in page and 'href="/backup-restore/"' in page
    assert "Join not completed by the cluster within 600 s: standalone again" in browser.get("/system-logs/")
    status, answer = post(unit, {"code": code, "check": True})
    assert status == 409 and "not waiting to join" in answer["error"]


def test_a_unit_stranded_by_an_earlier_version_is_not_stranded_for_good(unit):
    """A unit left joining before the accept time was recorded: its file's time stands for it."""
    agent.write_json("membership.json", {"mode": "joining", "shared_address": SHARED})
    written = os.stat(unit.home / "membership.json").st_mtime
    assert agent.membership(now=written + agent.JOIN_WINDOW + 1) == {"mode": "standalone"}
    assert unit.agent("status")["mode"] == "standalone"
