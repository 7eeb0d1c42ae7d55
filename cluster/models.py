from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from cluster import ssh


class Cluster(models.Model):
    """The one cluster this control plane manages (a single row)."""

    class Mode(models.TextChoices):
        NONE = "none", "Not configured"
        CLUSTERING = "clustering", "Clustering"
        HA = "ha", "HA Mode"

    mode = models.CharField(max_length=12, choices=Mode, default=Mode.NONE)
    shared_address = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    virtual_id = models.PositiveSmallIntegerField(
        "Cluster Virtual ID", default=1, validators=[MinValueValidator(1), MaxValueValidator(255)]
    )
    drain_time = models.PositiveSmallIntegerField(
        "Node Drain Time", default=10, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    created_at = models.DateTimeField(null=True, blank=True)
    last_summary = models.CharField(max_length=120, blank=True)

    def __str__(self):
        return f"Cluster {self.shared_address or '(not created)'}"

    @classmethod
    def get(cls):
        return cls.objects.get_or_create(pk=1)[0]


class Node(models.Model):
    """A member unit. Intent (enabled) and health facts are stored; status is derived."""

    number = models.PositiveSmallIntegerField("ID", unique=True)
    address = models.GenericIPAddressField(protocol="IPv4", unique=True)
    interface_address = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    ssh_port = models.PositiveIntegerField(default=2222)
    ssh_user = models.CharField(max_length=64)
    host_key = models.TextField(help_text="Pinned SSH host key: a changed key is refused.")
    facts = models.JSONField(default=dict, blank=True)
    is_admin = models.BooleanField(default=False)
    enabled = models.BooleanField(default=False)
    enabled_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    healthy_since = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    version = models.CharField(max_length=32, blank=True)
    active_connections = models.PositiveIntegerField(default=0)
    accepting = models.BooleanField(default=False, help_text="The node reported that it takes new connections.")
    booted_at = models.FloatField(default=0)
    applied_generation = models.PositiveIntegerField(default=0)
    last_status = models.CharField(max_length=12, blank=True)
    removing = models.BooleanField(default=False)
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
    """The minimal Virtual Service record; the configuration pages complete it."""

    name = models.CharField(max_length=64)
    address = models.GenericIPAddressField(protocol="IPv4")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])

    class Meta:
        constraints = [models.UniqueConstraint(fields=["address", "port"], name="unique_vs_endpoint")]

    def __str__(self):
        return f"{self.name} {self.address}:{self.port}"


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
    code = models.CharField(max_length=16, blank=True)  # cleared once used
    fingerprint = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=8, choices=State, default=State.PENDING)
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
