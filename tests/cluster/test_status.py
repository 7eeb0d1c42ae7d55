"""Node status over time, with an injected clock: the seed's rules, step by step."""

import colorsys
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from playwright.sync_api import expect

from cluster.membership.status import COLOURS, Status, cluster_summary, node_status, warm_up_left
from cluster.models import Node
from tests.helpers import every_status, log_in_and_wait

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DRAIN = 10


def seconds(n):
    return T0 + timedelta(seconds=n)


class Clock:
    """A node seen by a health check once a second, as the admin would."""

    def __init__(self):
        self.node = Node(number=2, address="10.0.0.2")
        self.now = T0

    def tick(self, n=1, ok=True, accepting=True):
        for _ in range(n):
            self.now += timedelta(seconds=1)
            self.node.checked_at = self.now
            if ok:
                self.node.healthy_since = self.node.healthy_since or self.now
                self.node.last_ok_at, self.node.failures, self.node.accepting = self.now, 0, accepting
            else:
                self.node.healthy_since, self.node.failures = None, self.node.failures + 1

    def status(self, has_vs=True, **cluster):
        return node_status(self.node, self.now, DRAIN, has_vs, **cluster)


def test_a_new_node_starts_disabled():
    clock = Clock()
    clock.tick(5)
    assert clock.status() == Status.DISABLED


def test_enable_brings_a_node_up_only_after_30_seconds():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(1)  # the first good check after Enable
    clock.tick(29)
    assert clock.status() == Status.STARTING
    clock.tick(1)
    assert clock.status() == Status.UP


def test_a_node_that_does_not_yet_take_connections_stays_starting():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40, accepting=False)
    assert clock.status() == Status.STARTING


def test_a_failed_check_makes_an_enabled_node_down_and_the_warm_up_starts_again():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    clock.tick(1, ok=False)
    assert clock.status() == Status.DOWN
    clock.tick(1)
    assert clock.status() == Status.STARTING
    clock.tick(29)
    assert clock.status() == Status.STARTING
    clock.tick(1)
    assert clock.status() == Status.UP


def test_no_answer_for_three_seconds_is_down_even_without_a_recorded_failure():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    clock.now += timedelta(seconds=3.5)  # the checks stopped arriving
    assert clock.status() == Status.DOWN


def test_disable_drains_for_the_drain_time_then_shows_disabled():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    clock.node.enabled, clock.node.disabled_at = False, clock.now
    clock.tick(DRAIN - 1)
    assert clock.status() == Status.DRAINING
    clock.tick(1)
    assert clock.status() == Status.DISABLED


def test_without_virtual_services_an_enabled_healthy_node_shows_disabled():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    assert clock.status(has_vs=False) == Status.DISABLED


def test_the_warm_up_counts_from_enable_not_from_the_first_answer():
    clock = Clock()
    clock.tick(60)  # joined, answering, Disabled
    clock.node.enabled, clock.node.healthy_since = True, clock.now  # Enable (membership.enable)
    clock.tick(1)
    assert clock.status() == Status.STARTING
    assert warm_up_left(clock.node, clock.now) == 29
    clock.tick(28)
    assert clock.status() == Status.STARTING
    assert warm_up_left(clock.node, clock.now) == 1
    clock.tick(1)
    assert clock.status() == Status.UP
    assert warm_up_left(clock.node, clock.now) == 0


def test_the_first_virtual_service_starts_the_warm_up_of_nodes_healthy_long_before():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(60)
    assert clock.status(has_vs=False) == Status.DISABLED
    first = clock.now  # the first Virtual Service appears
    assert clock.status(services_since=first) == Status.STARTING
    clock.tick(29)
    assert clock.status(services_since=first) == Status.STARTING
    assert warm_up_left(clock.node, clock.now, first) == 1
    clock.tick(1)
    assert clock.status(services_since=first) == Status.UP


def test_a_node_not_heard_from_since_the_control_plane_started_is_checking_not_down():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    assert clock.status() == Status.UP
    clock.now += timedelta(seconds=20)  # the control plane was off: nobody asked
    started = clock.now - timedelta(seconds=1)  # the restarted one began just now
    assert clock.status() == Status.DOWN  # what the page used to show
    assert clock.status(checks_since=started) == Status.CHECKING
    clock.tick(1)  # its first round hears from it: it was serving all along
    assert clock.status(checks_since=started) == Status.UP


def test_a_node_that_fails_the_restarted_control_planes_check_is_down():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    clock.now += timedelta(seconds=20)
    started = clock.now
    clock.tick(1, ok=False)
    assert clock.status(checks_since=started) == Status.DOWN


def test_a_node_that_stops_answering_a_running_control_plane_is_down():
    clock = Clock()
    clock.node.enabled = True
    started = clock.now
    clock.tick(40)
    clock.now += timedelta(seconds=3.5)  # checked, but no good answer: the checks time out
    clock.node.checked_at = clock.now
    assert clock.status(checks_since=started) == Status.DOWN


def test_a_rolling_reboot_shows_draining_until_the_reboot_then_down_then_starting_never_starting_between():
    clock = Clock()
    clock.node.enabled = True
    clock.tick(40)
    assert clock.status() == Status.UP
    clock.node.maintenance_since = clock.now
    seen = []
    for _ in range(DRAIN + 3):  # the drain, then a few rounds before the reboot request goes out
        clock.tick(accepting=False)
        seen.append(clock.status())
    assert set(seen) == {Status.DRAINING}
    clock.tick(2, ok=False)  # rebooting
    assert clock.status() == Status.DOWN
    clock.node.maintenance_since = None  # back on its new boot: the rollout lets it in again
    clock.tick(accepting=True)
    assert clock.status() == Status.STARTING


def test_the_admin_node_is_always_admin():
    clock = Clock()
    clock.node.is_admin = True
    assert clock.status() == Status.ADMIN


@pytest.mark.parametrize(
    "status,label,colour",
    [
        (Status.ADMIN, "Admin", "blue"),
        (Status.UP, "Up", "green"),
        (Status.DOWN, "Down", "red"),
        (Status.DISABLED, "Disabled", "yellow"),
        (Status.STARTING, "Starting", "green-red"),
        (Status.DRAINING, "Draining", "purple"),
        (Status.CHECKING, "Checking", "grey"),
    ],
)
def test_statuses_and_colours_follow_the_seed(status, label, colour):
    assert status.label == label
    assert COLOURS[status] == colour


def contrast(foreground, background="#ffffff"):
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(colour):
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted([luminance(foreground), luminance(background)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def stylesheet():
    return (settings.BASE_DIR / "static" / "wui" / "style.css").read_text()


def palette():
    """The stylesheet's colours by name (``--green: #187a2c``), as #rrggbb."""
    root = re.search(r":root \{([^}]*)\}", stylesheet())[1]
    out = {}
    for name, value in re.findall(r"--([\w-]+): #([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", root):
        out[name] = "#" + (value if len(value) == 6 else "".join(c * 2 for c in value)).lower()
    return out


def colour_of(name):
    """The colour a status cell whose COLOURS name is ``name`` is written in, as the stylesheet says."""
    rule = re.search(rf'\[data-colour="{re.escape(name)}"\] \{{[^}}]*--colour: var\(--([\w-]+)\)', stylesheet())
    assert rule, f"the stylesheet has no colour for {name!r}"
    return palette()[rule[1]]


@pytest.mark.parametrize("status", list(Status))
def test_every_status_colour_comes_from_colours_and_is_readable(status):
    colour = colour_of(COLOURS[status])
    for background in ("#ffffff", "#f3f4f6"):  # table cells, the page
        assert contrast(colour, background) >= 4.5, f"{status.label} {colour} on {background}"


# What each of COLOURS' names means, as a hue range in degrees (grey: hardly any saturation).
HUES = {"blue": (190, 250), "green": (90, 160), "red": (-15, 15), "yellow": (40, 65), "purple": (260, 300)}


def looks_like(name, rgb):
    hue, _, saturation = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    if name == "grey":
        return saturation < 0.1
    low, high = HUES[name]
    degrees = hue * 360 if hue * 360 <= 345 else hue * 360 - 360
    return saturation > 0.3 and low <= degrees <= high


def rgb(css):
    return tuple(int(float(n)) for n in re.findall(r"[\d.]+", css)[:3])


def hex_of(rgb_):
    return "#" + "".join(f"{c:02x}" for c in rgb_)


@pytest.mark.browser
def test_status_cells_in_the_browser_show_their_colours_name_readably(page, live_server, admin_user):
    nodes = every_status()
    log_in_and_wait(page, live_server.url + "/cluster-control/")
    for key, node in nodes.items():
        status = Status(key)
        cell = page.locator(f'tr[data-node="{node.number}"] td.status')
        expect(cell).to_have_attribute("data-colour", COLOURS[status])
        seen = cell.evaluate(
            """td => {
                let bg = null;
                for (let e = td; e && !bg; e = e.parentElement) {
                    const c = getComputedStyle(e).backgroundColor;
                    if (c !== "rgba(0, 0, 0, 0)" && c !== "transparent") bg = c;
                }
                return {colour: getComputedStyle(td).color, background: bg || "rgb(255, 255, 255)",
                        marker: getComputedStyle(td, "::before").backgroundImage,
                        markerColour: getComputedStyle(td, "::before").backgroundColor,
                        clip: getComputedStyle(td).backgroundClip};
            }"""
        )
        colour, background = rgb(seen["colour"]), rgb(seen["background"])
        assert seen["clip"] != "text", f"{status.label} is clipped text"
        assert contrast(hex_of(colour), hex_of(background)) >= 4.5, f"{status.label}: {seen}"
        name = COLOURS[status]
        if name == "green-red":
            # Readable text, with a marker beside it in both colours.
            marker = [rgb(m) for m in re.findall(r"rgb\([^)]*\)", seen["marker"])]
            assert any(looks_like("green", m) for m in marker) and any(looks_like("red", m) for m in marker), seen
        else:
            assert hex_of(colour) == colour_of(name), f"{status.label}: {seen}"
            assert looks_like(name, colour), f"{status.label} is {name} in COLOURS but shows {hex_of(colour)}"
            assert rgb(seen["markerColour"]) == colour, f"{status.label}'s marker: {seen}"


def test_no_status_colour_is_set_outside_the_one_table():
    assert not re.search(r"\.status-\w+ \{", stylesheet()), "a status has a colour of its own beside COLOURS"


def test_draining_has_a_colour_of_its_own():
    others = [c for s, c in COLOURS.items() if s != Status.DRAINING]
    assert COLOURS[Status.DRAINING] not in others


def test_the_cluster_summary_uses_the_seeds_words():
    up, down, dis = Status.UP, Status.DOWN, Status.DISABLED
    assert cluster_summary([Status.ADMIN, up, down, up], 0) == "Cluster running on only 3 of 4 nodes"
    assert cluster_summary([Status.ADMIN, up, dis, up], 1) == "Cluster running on 3 of 4 nodes (1 disabled)"
    assert cluster_summary([Status.ADMIN, up, up, up], 0) == "Cluster running on 4 of 4 nodes"
