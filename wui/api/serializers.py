"""The shapes of the REST API's JSON, for the OpenAPI schema and for reading request bodies.

Input is checked by the WUI's own forms inside the rules (the same refusal, the same reason); these
serializers say what a client sends and gets back.
"""

from rest_framework import serializers

from cluster.membership.status import Status
from cluster.models import Cluster, Interface, VirtualService
from cluster.virtual_services.forms import VirtualServiceForm
from wui.api.operations import KINDS


class Error(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    generation = serializers.IntegerField(required=False, help_text="The newest generation (stale writes).")


class Progress(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class Operation(serializers.Serializer):
    id = serializers.CharField(help_text="<kind>-<number>, as in its url")
    kind = serializers.ChoiceField(choices=KINDS)
    state = serializers.ChoiceField(choices=["running", "succeeded", "failed", "halted"])
    message = serializers.CharField(allow_blank=True)
    progress = Progress(required=False)
    url = serializers.CharField()


GENERATION_HELP = "The configuration generation you read: refused with 409 if it is no longer the newest."


class Write(serializers.Serializer):
    """Any write may say which generation its client read (or send If-Match)."""

    generation = serializers.IntegerField(required=False, min_value=0, help_text=GENERATION_HELP)


class Node(serializers.Serializer):
    id = serializers.IntegerField(help_text="The node's number")
    address = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.values)
    status_text = serializers.CharField()
    enabled = serializers.BooleanField()
    is_admin = serializers.BooleanField()
    deleting = serializers.BooleanField()
    version = serializers.CharField(allow_blank=True)
    applied_generation = serializers.IntegerField()
    active_connections = serializers.IntegerField()
    requests_per_second = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)


class ClusterOut(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Cluster.Mode.values)
    shared_address = serializers.CharField(allow_null=True)
    virtual_id = serializers.IntegerField()
    drain_time = serializers.IntegerField()
    generation = serializers.IntegerField()
    connections = serializers.IntegerField()
    requests_per_second = serializers.IntegerField()
    versions = serializers.CharField(help_text="What the nodes run, as Update Software shows it.")
    nodes = Node(many=True)


class ClusterPatch(Write):
    virtual_id = serializers.IntegerField(required=False)
    drain_time = serializers.IntegerField(required=False)


class Join(Write):
    address = serializers.CharField(max_length=64)
    code = serializers.CharField(max_length=64, help_text="The join code the unit shows after Add to Cluster.")
    fingerprint = serializers.CharField(max_length=128, required=False, allow_blank=True)


class RealServer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    address = serializers.CharField()
    port = serializers.IntegerField()
    weight = serializers.IntegerField()
    enabled = serializers.BooleanField()


class RealServerIn(Write):
    address = serializers.CharField(max_length=64, required=False)
    port = serializers.IntegerField(required=False)
    weight = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)


VS_FIELDS = VirtualServiceForm.Meta.fields  # what save_service validates, in the form's order


class VirtualService_(serializers.ModelSerializer):
    real_servers = RealServer(many=True, read_only=True)

    class Meta:
        model = VirtualService
        fields = ["id", *VS_FIELDS, "real_servers"]
        ref_name = "VirtualService"


class VirtualServiceIn(Write):
    name = serializers.CharField(max_length=64, required=False)
    address = serializers.CharField(max_length=64, required=False)
    port = serializers.IntegerField(required=False)
    protocol = serializers.ChoiceField(choices=VirtualService.Protocol.values, required=False)
    layer = serializers.ChoiceField(choices=VirtualService.Layer.values, required=False)
    scheduling = serializers.ChoiceField(choices=VirtualService.Scheduling.values, required=False)
    persistence = serializers.ChoiceField(choices=VirtualService.Persistence.values, required=False)
    persistence_timeout = serializers.IntegerField(required=False)
    transparency = serializers.BooleanField(required=False)
    subnet_originating = serializers.BooleanField(required=False)
    check_url = serializers.CharField(max_length=255, required=False)
    check_status = serializers.IntegerField(required=False)
    interface = serializers.CharField(max_length=32, required=False)
    enabled = serializers.BooleanField(required=False)


class InterfaceOut(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    cluster_shared_address = serializers.CharField(allow_null=True)
    use_for_cluster_checks = serializers.BooleanField()
    use_for_cluster_updates = serializers.BooleanField()
    use_for_geo = serializers.BooleanField()
    mtu = serializers.IntegerField()
    link_mode = serializers.ChoiceField(choices=Interface.LinkMode.values)
    link_status = serializers.CharField()
    additional_addresses = serializers.ListField(child=serializers.CharField())
    addresses = serializers.DictField(
        child=serializers.CharField(allow_blank=True), help_text="Each node's address/prefix, by node number."
    )


class InterfacePatch(Write):
    cluster_shared_address = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    use_for_cluster_checks = serializers.BooleanField(required=False)
    use_for_cluster_updates = serializers.BooleanField(required=False)
    use_for_geo = serializers.BooleanField(required=False)
    mtu = serializers.IntegerField(required=False)
    link_mode = serializers.ChoiceField(choices=Interface.LinkMode.values, required=False)
    additional_addresses = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=64, help_text="The whole new list."
    )
    addresses = serializers.DictField(
        child=serializers.CharField(max_length=64, allow_blank=True),
        required=False,
        help_text="Node number to address/prefix ('' for none); nodes not named keep theirs.",
    )


class GenerationOut(serializers.Serializer):
    number = serializers.IntegerField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)


class GenerationDetail(GenerationOut):
    document = serializers.DictField()


class Diff(serializers.Serializer):
    generation = serializers.IntegerField()
    against = serializers.IntegerField()
    diff = serializers.ListField(child=serializers.CharField(allow_blank=True), help_text="Unified diff lines.")


class GenerationNumber(serializers.Serializer):
    generation = serializers.IntegerField()


class Patch(serializers.Serializer):
    version = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class RolloutNode(serializers.Serializer):
    node = serializers.IntegerField()
    state = serializers.CharField()
    sent = serializers.IntegerField()
    size = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)


class Rollout(serializers.Serializer):
    operation = Operation()
    version = serializers.CharField(allow_blank=True)
    state = serializers.CharField()
    state_text = serializers.CharField()
    nodes = RolloutNode(many=True)


class Software(serializers.Serializer):
    running_versions = serializers.CharField(help_text="What the nodes run, as Update Software shows it.")
    kept = Patch(many=True)
    rollout = Rollout(allow_null=True)


class Upload(Write):
    patch = serializers.FileField()
    allow_downgrade = serializers.BooleanField(required=False)


class Install(Write):
    sha256 = serializers.CharField(max_length=64)


class BackupIn(Write):
    include_users = serializers.BooleanField(required=False)
    passphrase = serializers.CharField(max_length=1024, required=False, allow_blank=True)


class RestoreIn(Write):
    backup = serializers.FileField()
    passphrase = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    convert = serializers.BooleanField(required=False)


class Restored(serializers.Serializer):
    detail = serializers.CharField()
    generation = serializers.IntegerField()
    changed = serializers.BooleanField()


class LogLine(serializers.Serializer):
    time = serializers.DateTimeField()
    level = serializers.CharField()
    node = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(allow_blank=True)
