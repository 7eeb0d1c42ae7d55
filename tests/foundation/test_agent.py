"""The node agent as a program: JSON out, clear refusals, no Django."""

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys

import pytest

from nodes import agent
from nodes.agent.build import PACKAGE, build_zipapp, version_of
from tests.harness import AGENT_PYTHON, BASE_DIR

AGENT = None  # the one-file agent, built once for this module


@pytest.fixture(scope="module", autouse=True)
def agent_file(tmp_path_factory):
    global AGENT
    AGENT = str(build_zipapp(tmp_path_factory.mktemp("agent") / "flotilla-agent"))
    return AGENT


def run_agent(tmp_path, *args):
    env = {"NODE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-I", "-S", AGENT, *args], capture_output=True, text=True, env=env)


def test_status_of_a_fresh_unit_is_standalone(tmp_path):
    out = run_agent(tmp_path, "status")
    assert out.returncode == 0
    assert json.loads(out.stdout) | {"time": 0} == {
        "ok": True,
        "time": 0,
        "version": "1.0.0",
        "mode": "standalone",
        "accepting": True,
        "active_connections": 0,
        "connections": 0,
        "requests_per_second": 0,
        "dataplane": {"running": False},
        "booted_at": 0,
        "generation": 0,
        "schemas": [1],
    }


def test_unknown_verbs_and_wrong_arguments_are_refused_as_json(tmp_path):
    out = run_agent(tmp_path, "format-disk")
    assert out.returncode == 1
    assert "unknown verb 'format-disk'" in json.loads(out.stdout)["error"]
    out = run_agent(tmp_path, "status", "extra")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"] == "status takes 0 argument(s), got 1"


def test_without_node_home_the_agent_refuses(tmp_path):
    out = subprocess.run([sys.executable, "-I", "-S", AGENT, "status"], capture_output=True, text=True, env={})
    assert out.returncode == 1
    assert "NODE_HOME" in json.loads(out.stdout)["error"]


@pytest.mark.parametrize("where", ["zipapp", "source tree"])
def test_the_agent_does_not_import_django(tmp_path, where):
    """Every module of the package, from the one-file agent and from the source tree, without site-packages."""
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__")
    assert {"formats", "state", "serve", "build"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        f"for m in {modules!r}: importlib.import_module('nodes.agent.' + m)\n"
        "from nodes import agent\n"
        "agent.facts()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.partition('.')[0] in ('django', 'wui', 'cluster'))))"
    )
    path = AGENT if where == "zipapp" else str(BASE_DIR)
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, path],
        capture_output=True,
        text=True,
        env={"NODE_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_the_one_file_agent_is_a_reproducible_zipapp_with_its_version_stamped(tmp_path):
    first = build_zipapp(tmp_path / "a", "1.2.0")
    again = build_zipapp(tmp_path / "b", "1.2.0")
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/python3 -IS\n")
    assert first.stat().st_mode & 0o777 == 0o755
    assert version_of(first) == "1.2.0" and version_of(AGENT) == agent.VERSION
    # Run as a node runs it: its own interpreter, isolated, no site-packages.
    env = {"NODE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([AGENT_PYTHON, "-IS", str(first), "status"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["version"] == "1.2.0"
    out = subprocess.run([str(first), "status"], capture_output=True, text=True, env=env)  # by its "#!" line
    assert json.loads(out.stdout)["version"] == "1.2.0"


def test_the_package_runs_as_a_module_from_the_source_tree(tmp_path):
    out = subprocess.run(
        [sys.executable, "-S", "-m", "nodes.agent", "status"],
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        env={"NODE_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mode"] == "standalone"


def test_serve_answers_each_line_and_survives_bad_ones(tmp_path):
    requests = '{"verb": "status"}\nnot json\n{"verb": "log", "args": ["hello"]}\n'
    out = subprocess.run(
        [sys.executable, "-I", "-S", AGENT, "serve"],
        input=requests,
        capture_output=True,
        text=True,
        env={"NODE_HOME": str(tmp_path)},
    )
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert replies[0]["result"]["ok"] is True
    assert "error" in replies[1]
    assert replies[2] == {"result": {"logged": "hello"}}


def test_a_cluster_member_boots_taking_no_new_connections_until_told(tmp_path):
    (tmp_path / "membership.json").write_text(json.dumps({"mode": "member", "shared_address": "10.0.0.90"}))
    assert json.loads(run_agent(tmp_path, "boot").stdout)["accepting"] is False
    assert json.loads(run_agent(tmp_path, "accepting", "on").stdout)["accepting"] is True
    assert json.loads(run_agent(tmp_path, "boot").stdout)["accepting"] is False


def test_a_standalone_unit_takes_traffic_from_boot(tmp_path):
    assert json.loads(run_agent(tmp_path, "boot").stdout)["accepting"] is True


# --- joining: the unit's side, on a real state directory, with the clock passed in ---------------


def key_line(comment="cluster"):
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + os.urandom(32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def first_two(line):
    return " ".join(line.split()[:2])


@pytest.fixture
def unit(tmp_path, monkeypatch):
    """A unit's state directory with the installer's key authorised, as the agent library sees it."""
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir(mode=0o700)
    (tmp_path / ".ssh" / "authorized_keys").write_text(key_line("installer") + "\n")
    return tmp_path


def authorized(home):
    return (home / ".ssh" / "authorized_keys").read_text().splitlines()


def wrong_code_for(offer):
    return "AAAA-AAAA" if offer["code"] != "AAAA-AAAA" else "BBBB-BBBB"


MALFORMED = [
    ("ÄBCD-EFGH", "not ASCII"),
    ("ﬀBCD-EFGH", "not ASCII"),  # upper() would turn it into a plausible code of the right length
    ("A" * 5000, "has 5000 characters"),
    ("ABCD", "has 4 characters"),
    ("ABCD_EFGH", "like ABCD-EFGH"),
    ("ABC1-EFGH", "like ABCD-EFGH"),  # 1 is not in the code's alphabet
    (12345678, "must be text, not a number"),
    (None, "must be text, not null"),
    (["ABCD-EFGH"], "must be text, not a list"),
]


@pytest.mark.parametrize("code,reason", MALFORMED)
def test_malformed_codes_are_refused_with_the_reason_and_not_counted(unit, code, reason):
    offer = agent.offer_join()
    for judge in (agent.check_join_code, lambda c: agent.accept_join(c, key_line(), "10.0.0.90"), agent.abort_join):
        with pytest.raises(agent.Malformed, match=reason) as refused:
            judge(code)
        assert len(str(refused.value)) < 120
    assert agent.read_json("join.json")["attempts"] == 0
    assert agent.check_join_code(offer["code"])["mode"] == "standalone"


def test_a_code_is_read_as_written_in_either_case_with_or_without_the_hyphen(unit):
    code = agent.offer_join()["code"]
    for written in (code, code.lower(), code.replace("-", ""), f"  {code} "):
        assert agent.check_join_code(written)["mode"] == "standalone"


def test_wrong_codes_from_many_processes_at_once_are_counted_exactly(unit):
    """The count holds across processes (the node-local WUI may run several), not only threads."""
    offer = agent.offer_join()
    script = (
        "import sys\n"
        f"sys.path.insert(0, {AGENT!r})\n"
        "from nodes import agent\n"
        "sys.stdin.readline()\n"  # all start together
        "for _ in range(3):\n"
        "    try:\n"
        f"        agent.check_join_code({wrong_code_for(offer)!r})\n"
        "    except agent.AgentError as exc:\n"
        "        print(exc, flush=True)\n"
    )
    env = {"NODE_HOME": str(unit), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(8)
    ]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    answers = [line for proc in procs for line in proc.communicate()[0].splitlines()]
    assert len(answers) == 24
    assert answers.count("the join code is wrong") == agent.JOIN_ATTEMPTS
    assert all("not waiting" in a for a in answers if a != "the join code is wrong")
    assert agent.read_json("join.json") | {"expires_at": 0} == {
        "code": offer["code"],
        "expires_at": 0,
        "attempts": agent.JOIN_ATTEMPTS,
        "withdrawn": True,
    }
    with pytest.raises(agent.NotWaiting):
        agent.check_join_code(offer["code"])


def test_accepting_again_while_joining_answers_the_same(unit):
    offer = agent.offer_join()
    key = key_line()
    first = agent.accept_join(offer["code"], key, "10.0.0.90", now=1000.0)
    assert agent.accept_join(offer["code"], key, "10.0.0.90", now=1100.0) == first
    assert agent.check_join_code(offer["code"], now=1200.0)["mode"] == "joining"
    state = agent.read_json("membership.json")
    assert state == {
        "mode": "joining",
        "shared_address": "10.0.0.90",
        "cluster_key": first_two(key),
        "code_sha256": hashlib.sha256(offer["code"].encode()).hexdigest(),
        "accepted_at": 1000.0,
    }
    assert offer["code"] not in (unit / "membership.json").read_text()
    assert [first_two(line) for line in authorized(unit)].count(first_two(key)) == 1
    assert not (unit / "join.json").exists()


def test_while_joining_another_code_key_or_cluster_is_refused(unit):
    offer = agent.offer_join()
    key = key_line()
    agent.accept_join(offer["code"], key, "10.0.0.90", now=1000.0)
    with pytest.raises(agent.NotWaiting, match="joining the cluster at 10.0.0.90 with another code"):
        agent.check_join_code(wrong_code_for(offer), now=1001.0)
    with pytest.raises(agent.NotWaiting, match="with another code"):
        agent.accept_join(wrong_code_for(offer), key, "10.0.0.90", now=1001.0)
    with pytest.raises(agent.AgentError, match="another SSH key"):
        agent.accept_join(offer["code"], key_line(), "10.0.0.90", now=1001.0)
    with pytest.raises(agent.AgentError, match="joining the cluster at 10.0.0.90, not 10.0.0.91"):
        agent.accept_join(offer["code"], key, "10.0.0.91", now=1001.0)
    assert agent.read_json("membership.json")["cluster_key"] == first_two(key)
    assert len(authorized(unit)) == 2


def test_abort_forgets_exactly_the_clusters_key(unit):
    before = authorized(unit)
    offer = agent.offer_join()
    key = key_line()
    agent.accept_join(offer["code"], key, "10.0.0.90", now=1000.0)
    with pytest.raises(agent.AgentError, match="not the one this unit is joining with"):
        agent.abort_join(wrong_code_for(offer), now=1001.0)
    assert authorized(unit) == [*before, key]
    assert agent.abort_join(offer["code"], now=1001.0) == {"mode": "standalone"}
    assert authorized(unit) == before
    assert agent.membership(now=1002.0) == {"mode": "standalone"}
    assert agent.read_log()[0]["message"] == "Join undone by the cluster at 10.0.0.90: standalone again"
    # Again: nothing to undo, whatever the code; and the spent code joins nothing.
    assert agent.abort_join(offer["code"], now=1003.0) == {"mode": "standalone"}
    assert agent.abort_join(wrong_code_for(offer), now=1003.0) == {"mode": "standalone"}
    with pytest.raises(agent.NotWaiting):
        agent.accept_join(offer["code"], key, "10.0.0.90", now=1004.0)
    assert authorized(unit) == before


def test_a_member_is_not_aborted(unit):
    offer = agent.offer_join()
    key = key_line()
    agent.accept_join(offer["code"], key, "10.0.0.90", now=1000.0)
    agent.set_membership("member", "10.0.0.90")
    with pytest.raises(agent.NotWaiting, match="delete the node on the shared address"):
        agent.abort_join(offer["code"], now=1001.0)
    with pytest.raises(agent.NotWaiting, match="in the cluster at 10.0.0.90"):
        agent.accept_join(offer["code"], key, "10.0.0.90", now=1001.0)
    assert first_two(key) in map(first_two, authorized(unit))


def test_a_join_the_cluster_does_not_finish_is_undone_after_the_window(unit):
    before = authorized(unit)
    offer = agent.offer_join()
    agent.accept_join(offer["code"], key_line(), "10.0.0.90", now=1000.0)
    assert agent.status(now=1000.0 + agent.JOIN_WINDOW)["mode"] == "joining"
    assert len(authorized(unit)) == 2
    assert agent.status(now=1000.0 + agent.JOIN_WINDOW + 1)["mode"] == "standalone"
    assert authorized(unit) == before
    assert agent.read_json("membership.json") == {"mode": "standalone"}
    assert agent.read_log()[0] == {
        "time": agent.read_log()[0]["time"],
        "level": "warning",
        "message": "Join not completed by the cluster within 600 s: standalone again",
    }
    with pytest.raises(agent.NotWaiting):
        agent.check_join_code(offer["code"], now=2000.0)


def test_a_join_the_cluster_finished_stays(unit):
    offer = agent.offer_join()
    key = key_line()
    agent.accept_join(offer["code"], key, "10.0.0.90", now=1000.0)
    agent.set_membership("member", "10.0.0.90")
    assert agent.status(now=1000.0 + 10 * agent.JOIN_WINDOW)["mode"] == "member"
    assert first_two(key) in map(first_two, authorized(unit))


def test_a_join_recorded_without_its_time_lapses_from_the_files_time(unit):
    """A unit left joining by an older version (no accept time on record) is not stranded either."""
    agent.write_json("membership.json", {"mode": "joining", "shared_address": "10.0.0.90"})
    written = (unit / "membership.json").stat().st_mtime
    assert agent.membership(now=written + agent.JOIN_WINDOW)["mode"] == "joining"
    assert agent.membership(now=written + agent.JOIN_WINDOW + 1) == {"mode": "standalone"}


def test_the_agent_reports_a_lapsed_join_as_standalone(tmp_path):
    """Health checks read the status through the agent program: the join is undone there too."""
    (tmp_path / "membership.json").write_text(
        json.dumps({"mode": "joining", "shared_address": "10.0.0.90", "accepted_at": 1000.0})
    )
    assert json.loads(run_agent(tmp_path, "status").stdout)["mode"] == "standalone"
    assert "within 600 s: standalone again" in (tmp_path / "node.log").read_text()
