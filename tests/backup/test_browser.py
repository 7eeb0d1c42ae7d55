"""In a real browser: download a backup, change the configuration, upload the backup, see it restored."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from cluster.models import Cluster
from tests.helpers import ADMIN_PASSWORD, make_cluster, rendered

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, url):
    page.goto(url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_an_operator_downloads_a_backup_and_restores_it(page, live_server, admin_user, tmp_path):
    make_cluster()
    before = rendered()
    log_in(page, live_server.url)
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Backup/Restore").click()
    expect(page.get_by_role("heading", name="Backup/Restore", level=1)).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("button", name="Create Backup File").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.startswith("flotilla-backup-") and path.name.endswith(".tar.gz")

    Cluster.objects.filter(pk=1).update(virtual_id=200, drain_time=5)
    assert rendered() != before

    page.goto(live_server.url + reverse("backup_restore"))
    page.get_by_label("Backup File:").set_input_files(path)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore Configuration").click()

    expect(page.get_by_role("status")).to_contain_text("Configuration restored from the cluster backup")
    expect(page.get_by_role("status")).to_contain_text("The nodes are rebooted one at a time")
    assert rendered() == before
