"""Every page of the shared WUI and of a unit's own WUI, in a real browser, checked by axe-core.

axe-core is installed by `make axe` (a step of `make test`) into var/npm. Each page is checked at
desktop width and at phone width (375 px), where the page itself must not scroll sideways.
"""

import os
import re
import subprocess
import sys
from collections import deque
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.helpers import ADMIN_PASSWORD, every_status

pytestmark = pytest.mark.browser
AXE = settings.BASE_DIR / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
# Not pages: leaving the session, files to save, and the auditors' Django admin (Django's own pages).
NOT_PAGES = re.compile(r"/logout/|/admin/|download|/saved/")


@pytest.fixture(scope="session")
def axe():
    assert AXE.exists(), f"axe-core is not installed at {AXE}: run `make axe`"
    return AXE


def violations(page, axe):
    """The serious and critical findings of axe-core on the page as it is now."""
    page.add_script_tag(path=str(axe))
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => `${v.id} (${v.impact}): ${v.help}: `
                + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "))"""
    )
    return found


def page_scrolls_sideways(page):
    return page.evaluate("() => document.documentElement.scrollWidth > document.documentElement.clientWidth + 1")


def check(page, axe, url):
    """What is wrong with the page at ``url``, at desktop and at phone width."""
    problems = []
    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.goto(url)
        problems += [f"{url} at {name} width: {v}" for v in violations(page, axe)]
        if name == "phone" and page_scrolls_sideways(page):
            problems.append(f"{url}: the page scrolls sideways at 375 px")
    if not page.locator('meta[name=viewport][content*="width=device-width"]').count():
        problems.append(f"{url}: no viewport meta tag")
    if not page.get_by_role("link", name="Skip to content").count():
        problems.append(f"{url}: no skip link")
    return problems


def links(page, origin):
    hrefs = page.eval_on_selector_all("a[href]:not([download])", "links => links.map(a => a.href)")
    for href in hrefs:
        url = urldefrag(href).url
        if url.startswith(origin + "/") and not NOT_PAGES.search(urlsplit(url).path):
            yield url


def crawl(page, axe, start, limit=40):
    """Every page reachable by links from ``start``, each checked; the problems found."""
    origin = f"{urlsplit(start).scheme}://{urlsplit(start).netloc}"
    seen, queue, problems = {start}, deque([start]), []
    while queue and len(seen) <= limit:
        url = queue.popleft()
        problems += check(page, axe, url)
        for link in links(page, origin):
            if link not in seen:
                seen.add(link)
                queue.append(link)
    assert len(seen) > 5, f"only {sorted(seen)} found: the crawl did not get past the first page"
    return problems, seen


def log_in(page, url):
    page.goto(url + "/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_every_page_of_the_shared_wui_passes_axe_at_desktop_and_phone_width(page, live_server, admin_user, axe):
    every_status()
    problems = check(page, axe, live_server.url + "/login/")
    log_in(page, live_server.url)
    found, seen = crawl(page, axe, live_server.url + "/")
    assert live_server.url + "/cluster-control/" in seen
    assert not problems + found, "\n".join(problems + found)


def test_every_page_of_a_units_own_wui_passes_axe_at_desktop_and_phone_width(page, harness, axe):
    unit = harness.node(1)
    problems = check(page, axe, unit.wui_url + "/login/")
    log_in(page, unit.wui_url)
    found, seen = crawl(page, axe, unit.wui_url + "/")
    assert unit.wui_url + "/cluster-control/" in seen
    assert not problems + found, "\n".join(problems + found)


def test_the_skip_link_leads_past_the_menu(page, live_server, admin_user):
    log_in(page, live_server.url)
    page.goto(live_server.url + "/cluster-control/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.closest('main') !== null")
    assert focused, "Tab after the skip link went back into the menu"


def test_the_menu_stacks_above_the_page_at_phone_width(page, live_server, admin_user):
    page.set_viewport_size(PHONE)
    log_in(page, live_server.url)
    page.goto(live_server.url + "/cluster-control/")
    menu = page.get_by_role("navigation", name="Main menu").bounding_box()
    main = page.get_by_role("main").bounding_box()
    assert menu["width"] <= PHONE["width"] and main["width"] <= PHONE["width"]
    assert main["y"] >= menu["y"] + menu["height"] - 1, "the menu is beside the page, not above it"
    assert not page_scrolls_sideways(page)


def test_collected_static_files_are_compressed_and_cached_for_a_year(tmp_path):
    """Production (STATIC_COLLECTED, after collectstatic): gzip, content-named files, long caching."""
    env = {**os.environ, "STATIC_ROOT": str(tmp_path / "static"), "STATIC_COLLECTED": "true"}
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, check=True, cwd=settings.BASE_DIR)
    probe = """
import re
from django.conf import settings
from django.test import Client
settings.ALLOWED_HOSTS.append("testserver")
page = Client().get("/login/").content.decode()
css = re.search(r'href="(/static/wui/style\\.[0-9a-f]{12}\\.css)"', page)[1]
r = Client().get(css, HTTP_ACCEPT_ENCODING="gzip")
print(r.status_code, r.headers.get("Content-Encoding"), r.headers.get("Cache-Control"))
"""
    out = subprocess.run(
        [*manage, "shell", "-c", probe], env=env, check=True, cwd=settings.BASE_DIR, capture_output=True, text=True
    ).stdout.split("\n")[-2]
    status, encoding, cache = out.split(" ", 2)
    assert (status, encoding) == ("200", "gzip")
    assert "immutable" in cache and int(re.search(r"max-age=(\d+)", cache)[1]) >= 365 * 24 * 3600


def test_development_static_files_are_cached_briefly(client):
    response = client.get("/static/wui/style.css")
    response.close()
    assert response.status_code == 200
    assert re.search(r"max-age=\d+", response.headers["Cache-Control"])
