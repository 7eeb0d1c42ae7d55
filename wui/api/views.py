"""The REST API's views: thin, over the same rule functions as the WUI's pages (the same checks, the same reasons).

Every write may carry the generation its client read (stale.checked); long operations answer 202
with an operation to poll (operations.py).
"""

from django.conf import settings
from django.db import transaction
from django.forms.models import model_to_dict
from django.http import Http404, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from cluster import events
from cluster.backup import rules as backup
from cluster.configuration import rules as config
from cluster.logs.views import LogFilter
from cluster.membership import rules as membership
from cluster.membership.forms import AddNodeForm, DrainTimeForm, VirtualIdForm
from cluster.models import Cluster, ConfigGeneration, Event, Interface, Node, Rollout, RolloutNode, VirtualService
from cluster.network import document as network
from cluster.network import rules as network_rules
from cluster.rollout import rules as rollout
from cluster.rollout import versions
from cluster.virtual_services import rules as vs_rules
from cluster.virtual_services.forms import RealServerForm
from firmware import install, patch
from wui.api import errors, operations, serializers
from wui.api.stale import checked
from wui.text import human_size
from wui.uploads import FORM_OVERHEAD, StreamToDisk, content_length

ERRORS = {
    400: OpenApiResponse(serializers.Error, "Bad input: the reason, and each field's messages"),
    401: OpenApiResponse(serializers.Error, "No or bad credentials"),
    403: OpenApiResponse(serializers.Error, "Not allowed (a read-only key writing)"),
    404: OpenApiResponse(serializers.Error, "No such thing"),
    409: OpenApiResponse(serializers.Error, "Refused because of the cluster's state, or a stale generation"),
    413: OpenApiResponse(serializers.Error, "The upload is too large"),
    415: OpenApiResponse(serializers.Error, "The body is not of a type this operation takes"),
}
IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, required=False, description=serializers.GENERATION_HELP
)


def doc(ok, codes=(400, 401, 403, 404, 409), request=None, write=True, **extra):
    """The schema of one operation: its answer, the refusals it can give, the If-Match header for writes."""
    responses = ok if isinstance(ok, dict) else {200: ok}
    # Any body may come in a type the operation does not parse (a garbled multipart, text for JSON).
    codes = (*codes, 415) if write else codes
    responses = {**responses, **{code: ERRORS[code] for code in codes}}
    parameters = [*extra.pop("parameters", []), *([IF_MATCH] if write else [])]
    return extend_schema(request=request, responses=responses, parameters=parameters, **extra)


class ApiView(APIView):
    parser_classes = [JSONParser]

    def get_exception_handler(self):
        return errors.handle


class NotFound(ApiView):
    """Any other /api/v1/ address, or a path parameter of the wrong kind: 404 in JSON (after the login)."""

    schema = None

    def get(self, request, rest):
        raise Http404("No such API endpoint.")

    post = put = patch = delete = get


def actor(request):
    return events.Actor.of(request)


def fields(request, allowed):
    """The body's known fields as a plain dict; a field sent as a list or an object is refused."""
    if not hasattr(request.data, "items"):
        raise errors.BadInput("Send a JSON object.")
    out = {}
    for name in allowed:
        if name in request.data:
            value = request.data[name]
            if isinstance(value, (list, dict)):
                raise errors.BadInput(f"{name}: send a single value.", {name: ["not a single value"]})
            out[name] = value
    return out


def accepted(op, code=status.HTTP_202_ACCEPTED):
    response = Response(op, status=code)
    response["Location"] = op["url"]
    return response


# --- cluster and nodes -------------------------------------------------------------


def node_json(row):
    node, status_ = row["node"], row["status"]
    text = status_.label
    if row.get("warm_up_left"):
        text += f" ({row['warm_up_left']} s left)"
    elif row.get("drain_left"):
        text += f" ({row['drain_left']} s left)"
    if row["deleting"]:
        text = "Deleting"
    return {
        "id": node.number,
        "address": node.address,
        "status": status_.value,
        "status_text": text,
        "enabled": node.enabled,
        "is_admin": node.is_admin,
        "deleting": node.removing,
        "version": node.version,
        "applied_generation": node.applied_generation,
        "active_connections": node.active_connections,
        "requests_per_second": node.requests_per_second,
        "last_error": node.last_error,
    }


def found(rows, what, **lookup):
    """The one row ``lookup`` names, or a 404 that says what was not found ("There is no node 9.")."""
    row = rows.filter(**lookup).first()
    if row is None:
        raise Http404(f"There is no {what}.")
    return row


def _node_json(number):
    _, rows, _ = membership.node_rows()
    row = next((r for r in rows if r["node"].number == number), None)
    if row is None:
        raise Http404(f"There is no node {number} in the cluster.")
    return node_json(row)


def _service(pk):
    return found(VirtualService.objects, f"Virtual Service {pk}", pk=pk)


def _node(number):
    return found(Node.objects, f"node {number} in the cluster", number=number)


def cluster_json():
    cluster, rows, _ = membership.node_rows()
    return {
        "mode": cluster.mode,
        "shared_address": cluster.shared_address,
        "virtual_id": cluster.virtual_id,
        "drain_time": cluster.drain_time,
        "generation": config.latest_number(),
        **membership.traffic(rows),
        "versions": versions.describe(),
        "nodes": [node_json(r) for r in rows],
    }


def with_etag(body):
    response = Response(body)
    response["ETag"] = f'"{body["generation"]}"'
    return response


class ClusterView(ApiView):
    @doc(serializers.ClusterOut, codes=(401, 403), write=False)
    def get(self, request):
        """The cluster: its parameters, the newest configuration generation (also the ETag), traffic and every node."""
        return with_etag(cluster_json())

    @doc(serializers.ClusterOut, request=serializers.ClusterPatch)
    @checked
    def patch(self, request):
        """Set Cluster Virtual ID and/or Node Drain Time (Cluster Control > Cluster Parameters)."""
        wanted = fields(request, ("virtual_id", "drain_time"))
        with transaction.atomic():
            for field, form_class in (("virtual_id", VirtualIdForm), ("drain_time", DrainTimeForm)):
                if field not in wanted:
                    continue
                form = form_class({field: wanted[field]})
                if not form.is_valid():
                    raise errors.form_errors(form)
                membership.set_parameter(field, form.cleaned_data[field], actor(request))
        return with_etag(cluster_json())


class NodeList(ApiView):
    @doc(serializers.Node(many=True), codes=(401, 403), write=False)
    def get(self, request):
        """Every node with its status, as Cluster Control shows it."""
        _, rows, _ = membership.node_rows()
        return Response([node_json(r) for r in rows])

    @doc({202: serializers.Operation}, request=serializers.Join)
    @checked
    def post(self, request):
        """Add New Node: the unit's address and the join code it shows after Add to Cluster. 202: poll the join."""
        form = AddNodeForm(fields(request, ("address", "code", "fingerprint")))
        if not form.is_valid():
            raise errors.form_errors(form)
        data = form.cleaned_data
        join = membership.request_join(data["address"], data["code"], data["fingerprint"], actor(request))
        return accepted(operations.of_join(join))


class NodeDetail(ApiView):
    @doc(serializers.Node, codes=(401, 403, 404), write=False)
    def get(self, request, number):
        """One node, by its number."""
        return Response(_node_json(number))

    @doc({202: serializers.Operation}, request=serializers.Write)
    @checked
    def delete(self, request, number):
        """Delete a Disabled node that has drained. 202: poll the delete."""
        node = _node(number)
        membership.request_delete(node.pk, actor(request))
        return accepted(operations.of_delete(node.pk))


class NodeAction(ApiView):
    """Enable or Disable: the node as it is now."""

    rule = None

    @doc(serializers.Node, request=serializers.Write)
    @checked
    def post(self, request, number):
        """Enable, Disable or Resync the node; answers the node as it is now."""
        node = _node(number)
        self.rule(node.pk, actor(request))
        return Response(_node_json(number))


class NodeEnable(NodeAction):
    rule = staticmethod(membership.enable)


class NodeDisable(NodeAction):
    rule = staticmethod(membership.disable)


class NodeResync(NodeAction):
    """Send the whole newest configuration to the node again."""

    rule = staticmethod(membership.resync)


class NodeReboot(ApiView):
    @doc({202: serializers.Operation}, request=serializers.Write)
    @checked
    def post(self, request, number):
        """Reboot the node to run an installed software update (one node out at a time). 202: poll the reboot."""
        node = _node(number)
        rollout.reboot(node.pk, actor(request))
        marks = RolloutNode.objects.select_related("node").filter(node=node, reboot_requested_at__isnull=False)
        mark = marks.order_by("-reboot_requested_at").first()
        return accepted(operations.of_reboot(mark))


class OperationView(ApiView):
    @doc(serializers.Operation, codes=(401, 403, 404), write=False)
    def get(self, request, op_id):
        """A long operation: running, succeeded, failed or halted, with its message."""
        return Response(operations.find(op_id))


# --- Virtual Services and real servers -----------------------------------------------


def vs_json(vs):
    return serializers.VirtualService_(vs).data


def _refused_vs(exc):
    """The WUI's reasons: bad input (a form's fields) is 400, the cluster's restrictions 409."""
    form = exc.form
    if form is not None and form.errors:
        return errors.form_errors(form)
    return errors.Refused(str(exc))


class VirtualServiceList(ApiView):
    @doc(serializers.VirtualService_(many=True), codes=(401, 403), write=False)
    def get(self, request):
        """Every Virtual Service with its real servers."""
        services = VirtualService.objects.prefetch_related("real_servers")
        return Response([vs_json(vs) for vs in sorted(services, key=VirtualService.sort_key)])

    @doc({201: serializers.VirtualService_}, request=serializers.VirtualServiceIn)
    @checked
    def post(self, request):
        """Create a Virtual Service; fields not sent take the WUI form's starting values."""
        defaults = model_to_dict(VirtualService(address=Cluster.get().shared_address), serializers.VS_FIELDS)
        try:
            vs, _ = vs_rules.save_service(actor(request), {**defaults, **fields(request, serializers.VS_FIELDS)})
        except vs_rules.Refused as exc:
            raise _refused_vs(exc) from exc
        return Response(vs_json(vs), status=status.HTTP_201_CREATED)


class VirtualServiceDetail(ApiView):
    @doc(serializers.VirtualService_, codes=(401, 403, 404), write=False)
    def get(self, request, pk):
        """One Virtual Service."""
        return Response(vs_json(_service(pk)))

    @doc(serializers.VirtualService_, request=serializers.VirtualServiceIn)
    @checked
    def patch(self, request, pk):
        """Change the fields sent; the others keep their values."""
        current = model_to_dict(_service(pk), serializers.VS_FIELDS)
        try:
            vs, _ = vs_rules.save_service(actor(request), {**current, **fields(request, serializers.VS_FIELDS)}, pk)
        except vs_rules.Refused as exc:
            raise _refused_vs(exc) from exc
        return Response(vs_json(VirtualService.objects.get(pk=vs.pk)))

    @doc({204: None}, request=serializers.Write)
    @checked
    def delete(self, request, pk):
        """Delete the Virtual Service and its real servers."""
        vs_rules.delete_service(actor(request), pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


RS_FIELDS = tuple(RealServerForm.Meta.fields)


class RealServerList(ApiView):
    @doc(serializers.RealServer(many=True), codes=(401, 403, 404), write=False)
    def get(self, request, pk):
        """The service's real servers."""
        vs = _service(pk)
        return Response(serializers.RealServer(vs.real_servers.all(), many=True).data)

    @doc({201: serializers.RealServer}, request=serializers.RealServerIn)
    @checked
    def post(self, request, pk):
        """Add a real server (weight 1000 and enabled unless sent)."""
        defaults = {"weight": 1000, "enabled": True}
        try:
            _, rs, _ = vs_rules.save_real_server(actor(request), {**defaults, **fields(request, RS_FIELDS)}, pk)
        except vs_rules.Refused as exc:
            raise _refused_vs(exc) from exc
        return Response(serializers.RealServer(rs).data, status=status.HTTP_201_CREATED)


class RealServerDetail(ApiView):
    def _row(self, pk, rs_pk):
        return found(_service(pk).real_servers, f"real server {rs_pk} in Virtual Service {pk}", pk=rs_pk)

    @doc(serializers.RealServer, codes=(401, 403, 404), write=False)
    def get(self, request, pk, rs_pk):
        """One real server."""
        return Response(serializers.RealServer(self._row(pk, rs_pk)).data)

    @doc(serializers.RealServer, request=serializers.RealServerIn)
    @checked
    def patch(self, request, pk, rs_pk):
        """Change the fields sent."""
        current = model_to_dict(self._row(pk, rs_pk), RS_FIELDS)
        try:
            _, rs, _ = vs_rules.save_real_server(actor(request), {**current, **fields(request, RS_FIELDS)}, pk, rs_pk)
        except vs_rules.Refused as exc:
            raise _refused_vs(exc) from exc
        return Response(serializers.RealServer(self._row(pk, rs.pk)).data)

    @doc({204: None}, request=serializers.Write)
    @checked
    def delete(self, request, pk, rs_pk):
        """Remove the real server."""
        vs_rules.delete_real_server(actor(request), pk, rs_pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- network interfaces --------------------------------------------------------------


def interface_json(interface):
    sides = sorted(interface.node_interfaces.select_related("node"), key=lambda s: s.node.number)
    return {
        "index": interface.index,
        "name": interface.name,
        "cluster_shared_address": interface.cluster_shared_address,
        "use_for_cluster_checks": interface.use_for_cluster_checks,
        "use_for_cluster_updates": interface.use_for_cluster_updates,
        "use_for_geo": interface.use_for_geo,
        "mtu": interface.mtu,
        "link_mode": interface.link_mode,
        "link_status": network.link_status(interface),
        "additional_addresses": list(interface.additional_addresses),
        "addresses": {str(s.node.number): s.address for s in sides},
    }


OPTIONS = ("use_for_cluster_checks", "use_for_cluster_updates", "use_for_geo")


def _interface_changes(interface, body):
    """The Network Setup changes (action, form data) a PATCH body asks for, in the page's order."""
    changes = []
    if "addresses" in body:
        given = body["addresses"]
        if not isinstance(given, dict):
            raise errors.BadInput("addresses: send an object of node number to address/prefix.")
        data = {f"node_{s.node.number}": s.address for s in interface.node_interfaces.select_related("node")}
        for number, value in given.items():
            if f"node_{number}" not in data:
                raise errors.BadInput(f"addresses: node {number} has no side on {interface.name}.")
            data[f"node_{number}"] = "" if value is None else str(value)
        changes.append(("address", data))
    if "cluster_shared_address" in body:
        changes.append(("shared", {"cluster_shared_address": body["cluster_shared_address"] or ""}))
    if any(name in body for name in OPTIONS):
        data = {name: body.get(name, getattr(interface, name)) for name in OPTIONS}
        changes.append(("options", {name: value for name, value in data.items() if value is True or value == "true"}))
    if "link_mode" in body:
        changes.append(("link", {"link_mode": body["link_mode"]}))
    if "mtu" in body:
        changes.append(("mtu", {"mtu": body["mtu"]}))
    if "additional_addresses" in body:
        wanted = body["additional_addresses"]
        if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
            raise errors.BadInput("additional_addresses: send a list of address/prefix strings.")
        for address in interface.additional_addresses:
            if address not in wanted:
                changes.append(("remove_address", {"address": address}))
        for address in wanted:
            if address not in interface.additional_addresses:
                changes.append(("add_address", {"address": address}))
    return changes


class InterfaceList(ApiView):
    @doc(serializers.InterfaceOut(many=True), codes=(401, 403), write=False)
    def get(self, request):
        """Every network interface the nodes share, with each node's address on it."""
        network.ensure_interfaces()
        return Response([interface_json(i) for i in Interface.objects.order_by("index")])


class InterfaceDetail(ApiView):
    @doc(serializers.InterfaceOut, codes=(401, 403, 404), write=False)
    def get(self, request, name):
        """One interface, by name."""
        network.ensure_interfaces()
        return Response(interface_json(found(Interface.objects, f"interface {name}", name=name)))

    @doc(serializers.InterfaceOut, request=serializers.InterfacePatch)
    @checked
    def patch(self, request, name):
        """Change the settings sent (Network Setup); all of them or, on a refusal, none."""
        network.ensure_interfaces()
        interface = found(Interface.objects, f"interface {name}", name=name)
        if not hasattr(request.data, "items"):
            raise errors.BadInput("Send a JSON object.")
        # All of one PATCH or none of it: the first refusal undoes the changes before it.
        with transaction.atomic():
            for action, data in _interface_changes(interface, request.data):
                try:
                    network_rules.apply_change(action, Interface.objects.get(pk=interface.pk), data, actor(request))
                except network.Refused as exc:
                    raise errors.BadInput(str(exc)) from exc
        return Response(interface_json(Interface.objects.get(pk=interface.pk)))


# --- configuration generations ---------------------------------------------------------


def generation_json(generation, document=False):
    body = {
        "number": generation.number,
        "sha256": generation.sha256,
        "created_at": generation.created_at,
        "created_by": generation.created_by.get_username() if generation.created_by else None,
    }
    if document:
        body["document"] = generation.document
    return body


def _generation(number):
    return found(
        ConfigGeneration.objects.select_related("created_by"), f"configuration generation {number}", number=number
    )


class GenerationList(ApiView):
    @doc(serializers.GenerationOut(many=True), codes=(401, 403), write=False)
    def get(self, request):
        """The newest 200 configuration generations, who made each and when."""
        rows = ConfigGeneration.objects.select_related("created_by").defer("document")[:200]
        return Response([generation_json(g) for g in rows])


class GenerationDetail(ApiView):
    @doc(serializers.GenerationDetail, codes=(401, 403, 404), write=False)
    def get(self, request, number):
        """One generation with its whole configuration document."""
        return Response(generation_json(_generation(number), document=True))


class GenerationDiff(ApiView):
    @doc(
        serializers.Diff,
        codes=(400, 401, 403, 404),
        write=False,
        parameters=[OpenApiParameter("against", int, required=True, description="The generation to compare with.")],
    )
    def get(self, request, number):
        """What changed from generation `against` to this one (unified diff lines)."""
        against = request.query_params.get("against", "")
        if not against.isdigit() or len(against) > 9:
            raise errors.BadInput("against: name the generation to compare with, such as ?against=3.")
        new, old = _generation(number), _generation(int(against))
        return Response({"generation": new.number, "against": old.number, "diff": config.diff(old, new)})


class GenerationRollback(ApiView):
    @doc(serializers.GenerationNumber, request=serializers.Write)
    @checked
    def post(self, request, number):
        """Bring back this generation's configuration as a new generation."""
        new = config.rollback(_generation(number), actor(request))
        return Response({"generation": new.number})


# --- software updates and the rolling reboot ------------------------------------------


def _latest_update():
    return Rollout.objects.first()


def rollout_json(row):
    return {
        "operation": operations.of_rollout(row),
        "version": row.version,
        "state": row.state,
        "state_text": row.get_state_display(),
        "nodes": [
            {"node": n.node.number, "state": n.state, "sent": n.sent, "size": n.size, "message": n.message}
            for n in row.nodes.select_related("node")
        ],
    }


class StreamedUpload(ApiView):
    """A multipart upload streamed to disk and refused (413) before its body is read when too large."""

    parser_classes = [MultiPartParser]
    directory = suffix = None
    limit = None

    def dispatch(self, request, *args, **kwargs):
        # Before anything reads the body (the session's CSRF check would): where it goes, and how much.
        if request.method == "POST":
            request.upload_handlers = [StreamToDisk(request, self.directory(), self.suffix)]
            if content_length(request) > self.limit() + FORM_OVERHEAD:
                size, limit = human_size(content_length(request)), human_size(self.limit())
                detail = f"The file is too large: the upload is {size}, over the {limit} limit."
                return JsonResponse({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return super().dispatch(request, *args, **kwargs)


class SoftwareView(StreamedUpload):
    directory = staticmethod(lambda: install.patch_dir() / "incoming")
    suffix = ".patch"
    limit = staticmethod(lambda: settings.FIRMWARE_MAX_BYTES)

    @doc(serializers.Software, codes=(401, 403), write=False)
    def get(self, request):
        """What the nodes run, the software updates kept here, and the last update or restore."""
        latest = _latest_update()
        return Response(
            {
                "running_versions": versions.describe(),
                "kept": [{"version": m.version, "sha256": m.sha256, "size": m.size} for m in install.kept_patches()],
                "rollout": rollout_json(latest) if latest else None,
            }
        )

    @doc(serializers.Patch, request={"multipart/form-data": serializers.Upload}, codes=(400, 401, 403, 409, 413))
    @checked
    def post(self, request):
        """Upload a software update (multipart `patch`): verified, then kept for installing."""
        upload = request.FILES.get("patch")
        downgrade = str(request.data.get("allow_downgrade", "")).lower() in ("1", "true")
        try:
            manifest = install.accept(upload.temporary_file_path() if upload else None, downgrade)
        except install.Busy as exc:
            raise errors.Refused(f"The software update was refused: {exc}.") from exc
        except rollout.Refused as exc:
            raise errors.BadInput(str(exc)) from exc
        except patch.PatchError as exc:
            raise errors.BadInput(f"The software update was refused: {exc}.") from exc
        size = install.patch_path(manifest.sha256).stat().st_size
        return Response({"version": manifest.version, "sha256": manifest.sha256, "size": size})


class SoftwareInstall(ApiView):
    @doc({202: serializers.Operation}, request=serializers.Install)
    @checked
    def post(self, request):
        """Install a kept software update on every node (send, verify, install on all or none). 202: poll it."""
        sha256 = fields(request, ("sha256",)).get("sha256", "")
        try:
            update = install.start(str(sha256), actor(request))
        except rollout.Refused as exc:
            raise errors.Refused(f"The software update was not started: {exc}.") from exc
        return accepted(operations.of_update(update))


def _rollout_op(row):
    return operations.of_rolling(row, "restore" if row.kind == Rollout.Kind.RESTORE else "rolling-reboot")


class RollingReboot(ApiView):
    @doc({202: serializers.Operation}, request=serializers.Write)
    @checked
    def post(self, request):
        """Reboot the nodes one at a time to run the installed update, the admin node last. 202: poll it."""
        row = rollout.start_rolling(actor(request))
        return accepted(_rollout_op(row))


class RolloutAction(ApiView):
    rule = None

    @doc(serializers.Operation, request=serializers.Write)
    @checked
    def post(self, request):
        """Resume a halted rolling reboot, or cancel one (no further node is taken out)."""
        row = self.rule(actor(request))
        return accepted(_rollout_op(row), status.HTTP_200_OK)


class RolloutResume(RolloutAction):
    rule = staticmethod(rollout.resume)


class RolloutCancel(RolloutAction):
    rule = staticmethod(rollout.cancel)


# --- backup and restore -----------------------------------------------------------------


def _backup_file(request, include_users, passphrase):
    try:
        if passphrase:
            passphrase = backup.check_passphrase(passphrase, passphrase)
        data = backup.download(actor(request), include_users, passphrase)
    except backup.BackupError as exc:
        raise errors.BadInput(f"No backup was made. {exc}.") from exc
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{backup.filename()}"'
    return response


def _truthy(value):
    return value is True or str(value).lower() in ("1", "true", "on", "yes")


FILE = OpenApiResponse(OpenApiTypes.BINARY, "The backup file (.tar.gz)")


class BackupView(ApiView):
    @doc(
        {(200, "application/octet-stream"): FILE},
        codes=(400, 401, 403),
        write=False,
        parameters=[
            OpenApiParameter("include_users", bool, description="Include the users and their password hashes.")
        ],
    )
    def get(self, request):
        """Create Backup File: the file itself."""
        return _backup_file(request, _truthy(request.query_params.get("include_users")), "")

    @doc({(200, "application/octet-stream"): FILE}, request=serializers.BackupIn, codes=(400, 401, 403, 409))
    @checked
    def post(self, request):
        """Create Backup File, optionally protected with a passphrase."""
        body = fields(request, ("include_users", "passphrase"))
        return _backup_file(request, _truthy(body.get("include_users")), str(body.get("passphrase") or ""))


def _restore_refused(who, why, refusal):
    events.operator_action(who, f"Restore refused: {why}")
    return refusal(f"The backup was refused. {why}. Nothing was changed.")


class RestoreView(StreamedUpload):
    directory = staticmethod(lambda: backup.backup_dir() / "incoming")
    suffix = ".tar.gz"
    limit = staticmethod(lambda: settings.BACKUP_MAX_BYTES)

    @doc(
        {200: serializers.Restored, 202: serializers.Operation},
        request={"multipart/form-data": serializers.RestoreIn},
        codes=(400, 401, 403, 409, 413),
    )
    @checked
    def post(self, request):
        """Restore Configuration from a backup file (multipart `backup`). 202 when the nodes reboot one at a time."""
        upload = request.FILES.get("backup")
        if upload is None:
            raise errors.BadInput("Choose a backup file first.", {"backup": ["This field is required."]})
        who = actor(request)
        # A file that is no good is bad input (400); one this cluster cannot take now is refused (409).
        try:
            found = backup.read(upload.temporary_file_path(), passphrase=request.data.get("passphrase") or None)
        except backup.BackupError as exc:
            raise _restore_refused(who, exc, errors.BadInput) from exc
        convert = _truthy(request.data.get("convert"))
        if not convert and (items := backup.compatibility(found).items):
            # The WUI lists these and asks; a script is told them, and sends convert=1 to accept them.
            said = "; ".join(
                f"{i.setting}: {i.problem}" + (f" ({i.conversion})" if i.conversion else "") for i in items
            )
            raise _restore_refused(
                who, f"It has {len(items)} setting(s) this unit cannot take as they are: {said}", errors.Refused
            )
        try:
            generation, report = backup.restore(found, who, convert=convert)
        except backup.BackupError as exc:
            raise _restore_refused(who, exc, errors.Refused) from exc
        if report.target == "cluster" and report.changed:
            row = Rollout.objects.filter(kind=Rollout.Kind.RESTORE).first()
            return accepted(operations.of_rolling(row, "restore"))
        text = f"Configuration restored from the {found.origin} backup of {found.header['created']}"
        return Response({"detail": text, "generation": generation.number, "changed": report.changed})


# --- the System and Warning Message Files -------------------------------------------------


MAX_LINES = 1000


class LogView(ApiView):
    file = None

    @doc(
        serializers.LogLine(many=True),
        codes=(400, 401, 403),
        write=False,
        parameters=[
            OpenApiParameter("limit", int, description=f"At most this many lines, newest first (1-{MAX_LINES})."),
            OpenApiParameter("node", int, description="Only this node's lines."),
            OpenApiParameter("level", str, enum=Event.Level.values),
        ],
    )
    def get(self, request):
        """The newest lines of the message file, newest first."""
        query = {k: request.query_params.get(k, "") for k in ("node", "level")}
        form = LogFilter({"file": self.file, **query})
        if not form.is_valid():
            raise errors.form_errors(form)
        limit = request.query_params.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LINES:
            raise errors.BadInput(f"limit: send a whole number from 1 to {MAX_LINES}.", {"limit": ["out of range"]})
        lines = form.events()[: int(limit)]
        return Response(
            [{"time": e.time, "level": e.level, "node": e.node_number, "message": e.message} for e in lines]
        )


class SystemLog(LogView):
    file = "system"


class WarningLog(LogView):
    file = "warning"
