"""Properties of the configuration document: deterministic, and what is accepted round-trips."""

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.configuration import rules as config
from cluster.models import Cluster, VirtualService
from nodes import agent

# What a form accepts as a name: any text without NUL (Django's form fields refuse it).
names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=20
)
services = st.lists(st.tuples(names, st.integers(1, 65535)), max_size=5, unique_by=lambda t: t[1])


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(virtual_id=st.integers(1, 255), drain_time=st.integers(1, 600), vs=services)
def test_rendering_is_deterministic_and_an_accepted_document_round_trips(
    tmp_path, monkeypatch, virtual_id, drain_time, vs
):
    Cluster.objects.update_or_create(
        pk=1, defaults={"shared_address": "10.9.0.90", "virtual_id": virtual_id, "drain_time": drain_time}
    )
    VirtualService.objects.all().delete()
    for name, port in reversed(vs):
        VirtualService.objects.create(name=name, address="10.9.0.90", port=port)
    first, second = config.render(), config.render()
    assert config.canonical(first) == config.canonical(second)
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    text = json.dumps({"generation": 1, "sha256": hashlib.sha256(config.canonical(first)).hexdigest(), "config": first})
    agent.apply_config(text)
    assert agent.read_json("config.json")["config"] == json.loads(json.dumps(first))
    (tmp_path / "config.json").unlink()
