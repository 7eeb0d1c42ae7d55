from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from cluster import clock as control_clock
from cluster import ssh
from cluster.membership.status import Status, answering
from nodes.agent.formats import DRAIN_TIME, MTU, VIRTUAL_ID


class Cluster(models.Model):
    """The one cluster this control plane manages (a single row)."""

    class Mode(models.TextChoices):
        NONE = "none", "Not configured"
        CLUSTERING = "clustering", "Clustering"
        HA = "ha", "HA Mode"

    mode = models.CharField(max_length=12, choices=Mode, default=Mode.NONE)
    shared_address = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    virtual_id = models.PositiveSmallIntegerField(
        "Cluster Virtual ID",
        default=VIRTUAL_ID.default,
        validators=[MinValueValidator(VIRTUAL_ID.low), MaxValueValidator(VIRTUAL_ID.high)],
    )
    drain_time = models.PositiveSmallIntegerField(
        "Node Drain Time",
        default=DRAIN_TIME.default,
        validators=[MinValueValidator(DRAIN_TIME.low), MaxValueValidator(DRAIN_TIME.high)],
    )
    created_at = models.DateTimeField(null=True, blank=True)
    last_summary = models.CharField(max_length=120, blank=True)
    services_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the health round noted the first Virtual Service: every node's warm-up started again then.",
    )
    checks_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the running control plane began its health checks: a node not checked since is Checking.",
    )

    def __str__(self):
        return f"Cluster {self.shared_address or '(not created)'}"

    @classmethod
    def get(cls):
        return cls.objects.get_or_create(pk=1)[0]


class Node(models.Model):
    """A member unit. Intent (enabled) and health facts are stored; status is derived."""

    number = models.PositiveSmallIntegerField("ID", unique=True)
    address = models.GenericIPAddressField(protocol="IPv4", unique=True)
    ssh_port = models.PositiveIntegerField(default=2222)
    ssh_user = models.CharField(max_length=64)
    host_key = models.TextField(help_text="Pinned SSH host key: a changed key is refused.")
    tls_fingerprint = models.CharField(
        max_length=95,
        blank=True,
        help_text="Pinned SHA-256 fingerprint of the certificate the unit's WUI serves: a changed one is refused.",
    )
    facts = models.JSONField(default=dict, blank=True)
    is_admin = models.BooleanField(default=False)
    enabled = models.BooleanField(default=False)
    enabled_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True, help_text="The last health check, answered or not.")
    healthy_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Start of the warm-up: its first good answer after Down or a reboot, or Enable, whichever is last.",
    )
    failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    version = models.CharField(max_length=32, blank=True)
    active_connections = models.PositiveIntegerField(default=0, help_text="Open connections, as last reported.")
    requests_per_second = models.PositiveIntegerField(default=0, help_text="Requests per second, as last reported.")
    accepting = models.BooleanField(default=False, help_text="The node reported that it takes new connections.")
    booted_at = models.FloatField(default=0)
    applied_generation = models.PositiveIntegerField(default=0)
    last_status = models.CharField(max_length=12, blank=True)
    removing = models.BooleanField(default=False)
    removing_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker carries out the delete until then; after it, another resumes it."
    )
    removing_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    removing_from = models.GenericIPAddressField(null=True, blank=True, help_text="Where the Delete came from.")
    down_reason = models.TextField(blank=True, help_text="Why the health checks fail, as last reported.")
    config_error = models.TextField(blank=True, help_text="Why the node refused or failed the newest configuration.")
    schemas = models.JSONField(default=list, blank=True, help_text="Configuration schemas its software understands.")
    maintenance_since = models.DateTimeField(
        null=True, blank=True, help_text="Taken out of rotation for a rolling reboot: drains, then reboots."
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]

    def __str__(self):
        return f"Node {self.number} ({self.address})"

    @property
    def target(self):
        return ssh.Target(f"node {self.number}", self.address, self.ssh_port, self.ssh_user, self.host_key)

    @property
    def fingerprint(self):
        return ssh.fingerprint(self.host_key) if self.host_key else ""


class VirtualService(models.Model):
    """A Virtual Service: where clients connect, how they are balanced, checked and kept on a real server.

    Every field also has a database default, so that rows inserted outside the ORM (the demo and
    older tests write only name, address and port) get the same values as the pages would.
    """

    class Protocol(models.TextChoices):
        TCP = "tcp", "TCP"
        UDP = "udp", "UDP"

    class Layer(models.IntegerChoices):
        L7 = 7, "Layer 7"
        L4 = 4, "Layer 4"

    class Scheduling(models.TextChoices):
        ROUND_ROBIN = "rr", "round robin"
        WEIGHTED_ROUND_ROBIN = "wrr", "weighted round robin"
        LEAST_CONNECTION = "lc", "least connection"
        WEIGHTED_LEAST_CONNECTION = "wlc", "weighted least connection"
        SOURCE_IP_HASH = "sh", "source IP hash"

    class Persistence(models.TextChoices):
        NONE = "none", "None"
        SOURCE_IP = "source_ip", "Source IP Address"
        ACTIVE_COOKIE = "active_cookie", "Active Cookie"

    name = models.CharField("Service Name", max_length=64)
    address = models.GenericIPAddressField("Virtual Address", protocol="IPv4")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    protocol = models.CharField(max_length=3, choices=Protocol, default=Protocol.TCP, db_default=Protocol.TCP)
    layer = models.PositiveSmallIntegerField(choices=Layer, default=Layer.L7, db_default=Layer.L7)
    scheduling = models.CharField(
        "Scheduling Method",
        max_length=3,
        choices=Scheduling,
        default=Scheduling.ROUND_ROBIN,
        db_default=Scheduling.ROUND_ROBIN,
    )
    persistence = models.CharField(
        "Persistence Mode", max_length=16, choices=Persistence, default=Persistence.NONE, db_default=Persistence.NONE
    )
    persistence_timeout = models.PositiveIntegerField(
        "Persistence Timeout (seconds)",
        default=360,
        db_default=360,
        validators=[MinValueValidator(1), MaxValueValidator(604800)],
    )
    transparency = models.BooleanField("Transparency", default=False, db_default=False)
    subnet_originating = models.BooleanField("Subnet Originating Requests", default=True, db_default=True)
    check_url = models.CharField("Health Check URL", max_length=255, default="/", db_default="/")
    check_status = models.PositiveSmallIntegerField(
        "Expected HTTP Status",
        default=200,
        db_default=200,
        validators=[MinValueValidator(100), MaxValueValidator(599)],
    )
    interface = models.CharField(max_length=15, default="eth0", db_default="eth0")
    enabled = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["address", "port"]
        constraints = [models.UniqueConstraint(fields=["address", "port"], name="unique_vs_endpoint")]

    def __str__(self):
        return f"{self.name} ({self.address}:{self.port})"

    def as_config(self):
        """This service as the configuration document carries it: model field names, real servers sorted."""
        fields = [f.name for f in self._meta.concrete_fields if f.name != "id"]
        servers = sorted(self.real_servers.all(), key=RealServer.sort_key)
        return {**{name: getattr(self, name) for name in fields}, "real_servers": [rs.as_config() for rs in servers]}

    @staticmethod
    def sort_key(vs):
        return (VirtualService.address_key(vs.address), vs.port)

    @staticmethod
    def address_key(address):
        """Addresses in numeric order (10.0.0.9 before 10.0.0.10), whatever the database sorts by."""
        return tuple(int(part) for part in address.split("."))


class RealServer(models.Model):
    """A server behind a Virtual Service that takes its share of the connections."""

    virtual_service = models.ForeignKey(VirtualService, on_delete=models.CASCADE, related_name="real_servers")
    address = models.GenericIPAddressField("Real Server Address", protocol="IPv4")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    weight = models.PositiveIntegerField(default=1000, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["address", "port"]
        constraints = [
            models.UniqueConstraint(fields=["virtual_service", "address", "port"], name="unique_rs_per_vs"),
        ]

    def __str__(self):
        return f"{self.address}:{self.port}"

    def as_config(self):
        return {"address": self.address, "port": self.port, "weight": self.weight, "enabled": self.enabled}

    @staticmethod
    def sort_key(rs):
        return (VirtualService.address_key(rs.address), rs.port)


class ConfigGeneration(models.Model):
    """One committed cluster configuration: what every node must converge to."""

    number = models.PositiveIntegerField(unique=True)
    sha256 = models.CharField(max_length=64)
    document = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-number"]

    def __str__(self):
        return f"Generation {self.number}"


class JoinRequest(models.Model):
    """An operator's Add New Node, carried out by a worker; the outcome is shown on Cluster Control."""

    class State(models.TextChoices):
        PENDING = "pending", "Adding"
        DONE = "done", "Added"
        REFUSED = "refused", "Refused"

    address = models.GenericIPAddressField(protocol="IPv4")

    class Step(models.TextChoices):
        CHECKING = "", "Checking the code and the hardware"
        ACCEPTED = "accepted", "The unit authorised the cluster's key"
        RECORDED = "recorded", "Node recorded; finishing on the unit"

    code = models.CharField(max_length=16, blank=True)  # cleared once the request is over
    fingerprint = models.CharField(max_length=64, blank=True)
    # The certificate the unit's join endpoint presented at the check: the accept and the abort must meet it again.
    tls_fingerprint = models.CharField(max_length=95, blank=True)
    state = models.CharField(max_length=8, choices=State, default=State.PENDING)
    step = models.CharField(max_length=8, choices=Step, default=Step.CHECKING, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker carries out the join until then; after it, another resumes it."
    )
    node = models.ForeignKey("Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    source_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Add {self.address}: {self.get_state_display()}"


class Event(models.Model):
    """A line of the System Message File (and, for warnings, the Warning Message File)."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    level = models.CharField(max_length=8, choices=Level, default=Level.INFO)
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL)
    node_number = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    source_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self):
        return self.message


class Interface(models.Model):
    """A network interface as every node of the cluster has it (System Configuration > Network Setup)."""

    class LinkMode(models.TextChoices):
        AUTOMATIC = "auto", "Automatic"
        HALF_10 = "10-half", "10Mb/s, Half Duplex"
        FULL_10 = "10-full", "10Mb/s, Full Duplex"
        HALF_100 = "100-half", "100Mb/s, Half Duplex"
        FULL_100 = "100-full", "100Mb/s, Full Duplex"
        FULL_1000 = "1000-full", "1000Mb/s, Full Duplex"
        FULL_10000 = "10000-full", "10000Mb/s, Full Duplex"

    index = models.PositiveSmallIntegerField(unique=True)
    name = models.CharField(max_length=32, unique=True)
    cluster_shared_address = models.GenericIPAddressField(
        "Cluster Shared IP address", protocol="IPv4", null=True, blank=True
    )
    use_for_cluster_checks = models.BooleanField("Use for Cluster checks", default=False)
    use_for_cluster_updates = models.BooleanField("Use for Cluster Updates", default=False)
    use_for_geo = models.BooleanField("Use for GEO Responses and Requests", default=False)
    mtu = models.PositiveSmallIntegerField(
        "MTU", default=MTU.default, validators=[MinValueValidator(MTU.low), MaxValueValidator(MTU.high)]
    )
    link_mode = models.CharField("Link Status", max_length=12, choices=LinkMode, default=LinkMode.AUTOMATIC)
    additional_addresses = models.JSONField("Additional addresses", default=list, blank=True)

    class Meta:
        ordering = ["index"]

    def __str__(self):
        return f"Network Interface {self.index} ({self.name})"


class NodeInterface(models.Model):
    """One node's own side of an interface: its address there and (node-local) default gateway choice."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="network_interfaces")
    interface = models.ForeignKey(Interface, on_delete=models.CASCADE, related_name="node_interfaces")
    address = models.CharField("Interface Address", max_length=49, blank=True, help_text="address/prefix")
    use_for_default_gateway = models.BooleanField("Use for Default Gateway", default=False)

    class Meta:
        ordering = ["interface__index", "node__number"]
        constraints = [models.UniqueConstraint(fields=["node", "interface"], name="unique_node_interface")]

    def __str__(self):
        return f"Node {self.node.number} {self.interface.name} {self.address}"


# --- the rolling reboot: a software update's or a restore's, one node out at a time ---------------


def serving(node, has_vs):
    """A node that takes traffic when Up: the one a reboot must wait to see Up again."""
    return node.enabled and not node.is_admin and has_vs


def clock(moment):
    return timezone.localtime(moment).strftime("%H:%M:%S")


class Rollout(models.Model):
    """A software update, or the reboots after a restore: both take the nodes out one at a time."""

    class Kind(models.TextChoices):
        UPDATE = "update", "Software update"
        RESTORE = "restore", "Reboots after a restore"

    class State(models.TextChoices):
        SENDING = "sending", "Sending to the nodes"
        FAILED = "failed", "Refused"
        INSTALLED = "installed", "Installed: reboot the nodes"
        ROLLING = "rolling", "Rolling reboot"
        HALTED = "halted", "Rolling reboot halted"
        DONE = "done", "Done"

    ACTIVE = (State.SENDING, State.INSTALLED, State.ROLLING, State.HALTED)
    # What the operator may do in each state: the rules' checks and the page's buttons both read these.
    ROLLABLE = (State.INSTALLED,)  # Rolling Reboot
    RESUMABLE = (State.HALTED,)  # Resume
    CANCELLABLE = (State.ROLLING, State.HALTED)  # Cancel Rolling Reboot
    REBOOTABLE = (State.INSTALLED, State.HALTED)  # a node's own Reboot button

    class Step(models.TextChoices):
        NONE = "", "—"
        DRAINING = "draining", "Draining"
        REBOOTING = "rebooting", "Rebooting"
        WARMING = "warming", "Coming back"

    kind = models.CharField(max_length=8, choices=Kind, default=Kind.UPDATE)
    sha256 = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=10, choices=State, default=State.SENDING)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    touched_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last moved it on.")
    # The rolling reboot's place: which node, which step, since when.
    current = models.ForeignKey("cluster.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step = models.CharField(max_length=10, choices=Step, default=Step.NONE, blank=True)
    step_at = models.DateTimeField(null=True, blank=True)
    booted_before = models.FloatField(default=0)
    reboot_sent_at = models.DateTimeField(null=True, blank=True)
    node_timeout = models.PositiveIntegerField(default=300)

    class Meta:
        db_table = "firmware_rollout"  # created by the firmware app before the rolling reboot moved here
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.title} ({self.get_state_display()})"

    @property
    def title(self):
        if self.kind == self.Kind.RESTORE:
            return "Restore: the nodes reboot one at a time"
        return f"Software update to version {self.version}"

    @property
    def purpose(self):
        """Why a node reboots, as the log says it."""
        return (
            "to take the restored configuration" if self.kind == self.Kind.RESTORE else f"to run version {self.version}"
        )

    @property
    def busy(self):
        """Why another update or restore cannot start now."""
        if self.kind == self.Kind.RESTORE:
            return "the nodes are still rebooting one at a time after a restore: wait for it or cancel it"
        return f"another software update (version {self.version}) is in progress: finish or cancel it"

    @property
    def can_roll(self):
        return self.kind == self.Kind.UPDATE and self.state in self.ROLLABLE

    @property
    def can_resume(self):
        return self.state in self.RESUMABLE

    @property
    def can_cancel(self):
        return self.state in self.CANCELLABLE

    @property
    def can_reboot(self):
        """A node's Reboot button: an installed update waits for it, and no rolling reboot runs."""
        return self.kind == self.Kind.UPDATE and self.state in self.REBOOTABLE

    @classmethod
    def active(cls):
        return cls.objects.filter(state__in=cls.ACTIVE).first()

    def out(self, now, exclude=None):
        """Why no node may be taken out at ``now``: the first node other than ``exclude`` that is out, or None.

        A node is out from the moment it is told to reboot until it is Up again on its new boot
        (past its warm-up), and a serving node is out whenever it is not Up: taking a second one
        out would leave a three-node cluster with one serving node. ``exclude`` (the node about to
        go) counts only while its own reboot is still under way.
        """
        from cluster.membership.rules import node_rows  # the one place a row's status is derived; it imports models

        _, rows, has_vs = node_rows(now)
        marks = {m.node_id: m for m in self.nodes.exclude(reboot_requested_at=None)}
        for row in rows:
            node = row["node"]
            if node.pk in marks:
                why = marks[node.pk].still_out(row, has_vs, now)
            elif row["deleting"] or (exclude is not None and node.pk == exclude.pk):
                continue
            elif serving(node, has_vs):
                why = None if row["status"] == Status.UP else _status_text(row)
            elif node.enabled or node.is_admin:
                # Not in rotation yet (no Virtual Service) or the admin node: out while it does not answer.
                why = None if answering(node, now) else f"Node {node.number} is Down"
            else:
                why = None  # an operator disabled it: it takes no traffic either way
            if why:
                return why
        return None

    @property
    def waiting_for(self):
        """For the page: the node the next Reboot waits for, if any."""
        return self.out(control_clock.now())


class RolloutNode(models.Model):
    """One node's part of an update: the transfer, the node's own check and the install."""

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        SENDING = "sending", "Sending"
        VERIFIED = "verified", "Verified"
        INSTALLED = "installed", "Installed"
        REBOOTED = "rebooted", "Rebooted"
        FAILED = "failed", "Refused"
        DISCARDED = "discarded", "Not installed"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="nodes")
    node = models.ForeignKey("cluster.Node", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=State, default=State.WAITING)
    sent = models.BigIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    # One node out at a time: set when the node is told to reboot, cleared once it is Up again on its new boot.
    reboot_requested_at = models.DateTimeField(null=True, blank=True)
    reboot_sent_at = models.DateTimeField(null=True, blank=True, help_text="When the reboot request was last sent.")
    booted_before = models.FloatField(default=0, help_text="The node's boot time when it was told to reboot.")

    class Meta:
        db_table = "firmware_rolloutnode"
        ordering = ["node__number"]
        constraints = [models.UniqueConstraint(fields=["rollout", "node"], name="unique_rollout_node")]

    def __str__(self):
        return f"Node {self.node.number}: {self.get_state_display()}"

    @property
    def percent(self):
        return int(100 * self.sent / self.size) if self.size else 0

    def rebooted(self, node, now):
        """It answers on a boot other than the one it was told to leave."""
        return node.booted_at != self.booted_before and answering(node, now)

    def still_out(self, row, has_vs, now):
        """Why this node, told to reboot, is not back yet (``row`` from membership.rules.node_rows); None once it is."""
        node = row["node"]
        if self.reboot_requested_at is None:
            return None
        if not self.rebooted(node, now):
            return f"Node {node.number} is still out: rebooting since {clock(self.reboot_requested_at)}"
        if serving(node, has_vs) and row["status"] != Status.UP:
            return _status_text(row)
        return None


def _status_text(row):
    """ "Node 4 is Starting (12 s left)", as the node table shows it."""
    text = f"Node {row['node'].number} is {row['status'].label}"
    return text + (f" ({row['warm_up_left']} s left)" if row.get("warm_up_left") else "")
