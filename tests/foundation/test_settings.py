"""Production settings pass Django's deployment checks."""

import os
import subprocess
import sys

from tests.harness import BASE_DIR

PRODUCTION = {
    "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-1234567890",
    "FLOTILLA_HTTPS": "true",
    "ALLOWED_HOSTS": "lb.example.test",
    "DEBUG": "false",
}


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {**os.environ, **PRODUCTION, "FLOTILLA_VAR_DIR": str(tmp_path)}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # only the browser tests need it
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr + out.stdout


def test_a_bad_setting_stops_start_up_with_its_name(tmp_path):
    env = {**os.environ, "FLOTILLA_ROLE": "cluster-of-doom", "FLOTILLA_VAR_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "FLOTILLA_ROLE must be 'shared' or 'node'" in out.stderr
