"""The node agent as a program: JSON out, clear refusals, no Django."""

import json
import subprocess
import sys

from nodes.harness import BASE_DIR

AGENT = str(BASE_DIR / "nodes" / "agent.py")


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


def test_the_agent_does_not_import_django(tmp_path):
    code = (
        f"import runpy, sys; sys.argv = ['agent', 'facts']; "
        f"runpy.run_path({AGENT!r}, run_name='not_main'); print('django' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, env={"NODE_HOME": str(tmp_path)}
    )
    assert out.stdout.strip() == "False"


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
