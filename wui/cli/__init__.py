"""`flotilla`: the cluster from a shell, over the REST API with an API key.

It runs on an operator's machine: the standard library and click only, nothing of the product's own
(no Django). Human output is short tables and sentences with the API's own reasons; ``--json`` prints
the API's JSON. The exit codes are in ``client`` and the README.
"""

import json
import os
import sys
import time
from importlib import metadata

import click

from wui.cli import client as api
from wui.cli.client import ApiError, Client

POLL_SECONDS = 0.5
# How long a long operation may go unanswered before the client gives up on it: a rolling reboot
# or a restore restarts the admin node, and with it the API on the shared address.
PATIENCE_SECONDS = 180


def _version():
    try:
        return metadata.version("flotilla")
    except metadata.PackageNotFoundError:
        return "(not installed)"


class State:
    current = None  # this run's, for main() to print a refusal's JSON with --json

    def __init__(self, url, key, ca_cert, insecure, as_json, timeout, generation):
        self.url, self.key, self.ca_cert, self.insecure = url, key, ca_cert, insecure
        self.json, self.timeout, self.generation = as_json, timeout, generation
        self._client = None

    @property
    def client(self):
        if self._client is None:
            if not self.url:
                raise click.UsageError("No cluster URL: give --url or set FLOTILLA_URL.")
            if not self.key:
                raise ApiError("No API key: give --key or set FLOTILLA_API_KEY.", api.AUTH)
            self._client = Client(self.url, self.key, self.ca_cert, self.insecure, self.timeout, self.generation)
        return self._client


pass_state = click.make_pass_decorator(State)


def _json_flag(ctx, param, value):
    if value:
        ctx.find_object(State).json = True


# Every command also takes --json after its own name (`flotilla nodes list --json`).
json_option = click.option(
    "--json", is_flag=True, expose_value=False, callback=_json_flag, help="Print the API's JSON."
)


class Group(click.Group):
    def add_command(self, cmd, name=None):
        if not isinstance(cmd, click.Group):
            json_option(cmd)
        super().add_command(cmd, name)

    def group(self, *args, **kwargs):
        kwargs.setdefault("cls", Group)
        return super().group(*args, **kwargs)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="FLOTILLA_URL", metavar="URL", help="The cluster's shared WUI, e.g. https://10.0.0.90.")
@click.option("--key", envvar="FLOTILLA_API_KEY", metavar="KEY", help="An API key (flt_...), made in the WUI.")
@click.option(
    "--ca-cert",
    envvar="FLOTILLA_CA_CERT",
    type=click.Path(exists=True, dir_okay=False),
    help="A PEM file of the CA that signed the cluster's certificate.",
)
@click.option("--insecure", is_flag=True, help="Do not verify the cluster's certificate.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables.")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True, help="Seconds per request.")
@click.option(
    "--generation",
    type=click.IntRange(min=0),
    metavar="N",
    help="Change only if the configuration is still at generation N (see `status`); exit 4 if not.",
)
@click.version_option(_version(), prog_name="flotilla")
@click.pass_context
def cli(ctx, url, key, ca_cert, insecure, as_json, timeout, generation):
    """Manage a Flotilla cluster over its REST API.

    Exit codes: 0 done; 1 refused (the API's reason is printed); 2 usage error; 3 authentication or
    permission; 4 stale write (--generation); 5 the cluster could not be reached or failed (5xx);
    6 a long operation ended failed or halted.
    """
    ctx.obj = State.current = State(url, key, ca_cert, insecure, as_json, timeout, generation)


# --- output --------------------------------------------------------------------------------


def emit(state, data, human):
    if state.json:
        click.echo(json.dumps(data, indent=2))
    else:
        human(data)


def cell(value):
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def table(rows, columns):
    """Rows under their headings; ``columns`` is [(heading, key or function of the row)]."""
    if not rows:
        click.echo("(none)")
        return
    get = [(f if callable(f) else (lambda r, k=f: r.get(k))) for _, f in columns]
    cells = [[h for h, _ in columns]] + [[cell(g(r)) for g in get] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def fields(data, skip=()):
    for name, value in data.items():
        if name not in skip:
            click.echo(f"{name}: {cell(value)}")


def parse_settings(pairs):
    """FIELD=VALUE pairs as the API's JSON: a value that reads as JSON (80, true, null) is taken as such."""
    body = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE")
        try:
            body[name] = json.loads(value)
        except ValueError:
            body[name] = value
    return body


# --- long operations -----------------------------------------------------------------------


class Watch:
    """A long operation's progress on stderr: a bar when the API counts its steps (on a terminal),
    otherwise a line each time its message changes."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.said = None

    def show(self, op):
        message = op.get("message") or op.get("state", "")
        progress = op.get("progress") or {}
        done, total = progress.get("done"), progress.get("total")
        if self.tty and total:
            if self.bar is None or self.bar.length != total:
                self.close()
                self.bar = click.progressbar(
                    length=total,
                    label=op.get("id"),
                    show_eta=False,
                    show_pos=True,
                    item_show_func=lambda m: m and m[:60],
                    file=sys.stderr,
                )
                self.bar.__enter__()
            self.bar.update(max(0, (done or 0) - self.bar.pos), message)
        elif message != self.said:
            count = f" ({done}/{total})" if total else ""
            click.echo(f"{op.get('id')}: {message}{count}", err=True)
        self.said = message

    def note(self, text):
        if text != self.said:
            self.close()
            click.echo(text, err=True)
            self.said = text

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def wait(state, op):
    """Poll the operation until it ends; a cluster that stops answering for a while (its admin node
    restarting) is waited for, up to PATIENCE_SECONDS."""
    url = op.get("url") or f"/operations/{op['id']}"
    watch = Watch()
    answered = time.monotonic()
    try:
        while op.get("state") == "running":
            watch.show(op)
            time.sleep(POLL_SECONDS)
            try:
                op = state.client.get(url)
                answered = time.monotonic()
            except ApiError as exc:
                if exc.exit_code != api.UNREACHABLE or time.monotonic() - answered > PATIENCE_SECONDS:
                    raise
                watch.note(f"Waiting for the cluster to answer again ({exc.message})")
        watch.show(op)
    except KeyboardInterrupt:
        watch.close()
        click.echo(f"\nStopped waiting; {op['id']} goes on: flotilla operation {op['id']} --wait", err=True)
        sys.exit(130)
    finally:
        watch.close()
    return op


def finish(state, op):
    """The operation's end: printed, and exit 6 if it failed or halted."""
    if op.get("state") in ("failed", "halted"):
        raise ApiError(f"{op.get('kind')} {op['id']} {op['state']}: {op.get('message', '')}", api.FAILED, op)
    emit(state, op, lambda o: click.echo(f"{o.get('kind')} {o['id']} {o.get('state')}: {o.get('message', '')}"))


def follow(state, response, no_wait, done=None):
    """A 202 answer's operation, waited for (or its id printed with --no-wait); any other answer as is."""
    op = response.body
    if response.status != 202 or not isinstance(op, dict) or "id" not in op:
        emit(state, op, done or (lambda b: click.echo((b or {}).get("detail") or (b or {}).get("message") or "Done.")))
        return
    if no_wait:
        emit(state, op, lambda o: click.echo(o["id"]))
        if not state.json:
            click.echo(f"Started; follow it with: flotilla operation {op['id']} --wait", err=True)
        return
    finish(state, wait(state, op))


no_wait_option = click.option("--no-wait", is_flag=True, help="Print the operation's id and return at once.")


@cli.command()
@click.argument("operation_id", metavar="ID")
@click.option("--wait", "wait_", is_flag=True, help="Wait until it ends (exit 6 if it failed or halted).")
@pass_state
def operation(state, operation_id, wait_):
    """Show a long operation (join-5, update-2, ...), or wait for it to end."""
    op = state.client.get(f"/operations/{operation_id}")
    if wait_:
        op = wait(state, op)
    finish(state, op)


# --- status and nodes ----------------------------------------------------------------------


def node_table(nodes):
    table(
        nodes,
        [
            ("NODE", "id"),
            ("ADDRESS", "address"),
            ("STATUS", lambda n: n.get("status_text") or n.get("status")),
            ("ENABLED", "enabled"),
            ("ADMIN", "is_admin"),
            ("VERSION", "version"),
            ("GENERATION", "applied_generation"),
            ("CONNECTIONS", "active_connections"),
            ("REQ/S", "requests_per_second"),
        ],
    )
    for node in nodes:
        if node.get("last_error"):
            click.echo(f"Node {node.get('id')}: {node['last_error']}")


@cli.command()
@pass_state
def status(state):
    """The cluster: its parameters, generation, traffic and every node's status."""

    def human(c):
        click.echo(
            f"Cluster on {c.get('shared_address')} ({c.get('mode')}), configuration generation {c.get('generation')}"
        )
        click.echo(
            f"Virtual ID {c.get('virtual_id')}, Node Drain Time {c.get('drain_time')} s; "
            f"{cell(c.get('connections'))} connections, {cell(c.get('requests_per_second'))} requests/s"
        )
        if c.get("versions"):
            click.echo(f"Running versions: {cell(c['versions'])}")
        node_table(c.get("nodes") or [])

    emit(state, state.client.get("/cluster"), human)


@cli.group(invoke_without_command=True)
@click.pass_context
def nodes(ctx):
    """The cluster's nodes (without a command: list them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(nodes_list)


@nodes.command("list")
@pass_state
def nodes_list(state):
    """Every node with its status."""
    emit(state, state.client.get("/nodes"), node_table)


@nodes.command("show")
@click.argument("node", type=int)
@pass_state
def nodes_show(state, node):
    """One node."""
    emit(state, state.client.get(f"/nodes/{node}"), fields)


@nodes.command("add")
@click.argument("address")
@click.option("--code", required=True, help="The one-time join code the unit shows after Add to Cluster.")
@click.option("--fingerprint", default="", help="The unit's SSH host key fingerprint (SHA256:...), to check it.")
@no_wait_option
@pass_state
def nodes_add(state, address, code, fingerprint, no_wait):
    """Add the unit at ADDRESS to the cluster (it joins disabled; enable it after)."""
    body = {"address": address, "code": code}
    if fingerprint:
        body["fingerprint"] = fingerprint
    follow(state, state.client.call("POST", "/nodes", json_body=body), no_wait)


def node_action(action, past):
    @pass_state
    def command(state, node):
        answer = state.client.call("POST", f"/nodes/{node}/{action}").body
        emit(state, answer, lambda n: click.echo(f"Node {node} {past}: {n.get('status_text') or n.get('status')}."))

    return command


nodes.command("enable", help="Put a node in rotation (it warms up, then takes its share).")(
    click.argument("node", type=int)(node_action("enable", "enabled"))
)
nodes.command("disable", help="Take a node out of rotation (its connections drain for the Node Drain Time).")(
    click.argument("node", type=int)(node_action("disable", "disabled"))
)


@nodes.command("delete")
@click.argument("node", type=int)
@no_wait_option
@pass_state
def nodes_delete(state, node, no_wait):
    """Remove a node from the cluster (it goes back to a standalone unit)."""
    follow(state, state.client.call("DELETE", f"/nodes/{node}"), no_wait)


@nodes.command("reboot")
@click.argument("node", type=int)
@no_wait_option
@pass_state
def nodes_reboot(state, node, no_wait):
    """Reboot one node."""
    follow(state, state.client.call("POST", f"/nodes/{node}/reboot"), no_wait)


# --- parameters ----------------------------------------------------------------------------

PARAMETERS = ("virtual_id", "drain_time", "generation")


def show_parameters(c):
    click.echo(f"Cluster Virtual ID: {c.get('virtual_id')}")
    click.echo(f"Node Drain Time: {c.get('drain_time')} s")
    click.echo(f"Configuration generation: {c.get('generation')}")


@cli.group()
def parameters():
    """The cluster's parameters: Cluster Virtual ID and Node Drain Time."""


@parameters.command("get")
@pass_state
def parameters_get(state):
    """Show them."""
    c = state.client.get("/cluster")
    emit(state, {k: c.get(k) for k in PARAMETERS}, show_parameters)


@parameters.command("set")
@click.option("--virtual-id", type=int, help="The Cluster Virtual ID.")
@click.option("--drain-time", type=int, help="The Node Drain Time, in seconds.")
@pass_state
def parameters_set(state, virtual_id, drain_time):
    """Change them."""
    body = {k: v for k, v in (("virtual_id", virtual_id), ("drain_time", drain_time)) if v is not None}
    if not body:
        raise click.UsageError("Give --virtual-id and/or --drain-time.")
    c = state.client.call("PATCH", "/cluster", json_body=body).body
    emit(state, {k: c.get(k) for k in PARAMETERS}, show_parameters)


# --- Virtual Services and real servers -----------------------------------------------------


def ident(row):
    return row.get("id", row.get("pk"))


def vs_table(services):
    table(
        services,
        [
            ("ID", ident),
            ("NAME", "name"),
            ("ADDRESS", "address"),
            ("PORT", "port"),
            ("PROTOCOL", "protocol"),
            ("ENABLED", "enabled"),
            ("REAL SERVERS", lambda s: len(s.get("real_servers") or [])),
        ],
    )


def rs_table(servers):
    table(
        servers, [("ID", ident), ("ADDRESS", "address"), ("PORT", "port"), ("WEIGHT", "weight"), ("ENABLED", "enabled")]
    )


def show_vs(service):
    fields(service, skip=("real_servers",))
    click.echo("Real servers:")
    rs_table(service.get("real_servers") or [])


set_option = click.option(
    "--set", "pairs", multiple=True, metavar="FIELD=VALUE", help="Any other field, as the WUI form names it."
)


@cli.group()
def vs():
    """Virtual Services."""


@vs.command("list")
@pass_state
def vs_list(state):
    """Every Virtual Service."""
    emit(state, state.client.get("/virtual-services"), vs_table)


@vs.command("show")
@click.argument("service", type=int)
@pass_state
def vs_show(state, service):
    """One Virtual Service with its real servers."""
    emit(state, state.client.get(f"/virtual-services/{service}"), show_vs)


@vs.command("add")
@click.option("--name", required=True)
@click.option("--address", help="The Virtual Address (default: the cluster's shared address).")
@click.option("--port", required=True, type=int)
@click.option("--protocol", type=click.Choice(["tcp", "udp"]), help="[default: tcp]")
@set_option
@pass_state
def vs_add(state, name, address, port, protocol, pairs):
    """Create a Virtual Service (the fields not given take the WUI form's defaults)."""
    given = {"name": name, "address": address, "port": port, "protocol": protocol}
    body = {**{k: v for k, v in given.items() if v is not None}, **parse_settings(pairs)}
    service = state.client.call("POST", "/virtual-services", json_body=body).body
    emit(
        state, service, lambda s: click.echo(f"Virtual Service {ident(s)} created: {s.get('address')}:{s.get('port')}.")
    )


@vs.command("set")
@click.argument("service", type=int)
@click.argument("pairs", nargs=-1, required=True, metavar="FIELD=VALUE...")
@pass_state
def vs_set(state, service, pairs):
    """Change fields of a Virtual Service."""
    answer = state.client.call("PATCH", f"/virtual-services/{service}", json_body=parse_settings(pairs)).body
    emit(state, answer, show_vs)


@vs.command("delete")
@click.argument("service", type=int)
@pass_state
def vs_delete(state, service):
    """Delete a Virtual Service and its real servers."""
    answer = state.client.call("DELETE", f"/virtual-services/{service}").body
    emit(state, answer or {}, lambda _: click.echo(f"Virtual Service {service} deleted."))


@cli.group()
def rs():
    """The real servers of a Virtual Service."""


@rs.command("list")
@click.argument("service", type=int)
@pass_state
def rs_list(state, service):
    """The real servers of Virtual Service SERVICE."""
    emit(state, state.client.get(f"/virtual-services/{service}/real-servers"), rs_table)


@rs.command("add")
@click.argument("service", type=int)
@click.argument("address")
@click.argument("port", type=int)
@click.option("--weight", type=int)
@click.option("--disabled", is_flag=True, help="Add it disabled.")
@pass_state
def rs_add(state, service, address, port, weight, disabled):
    """Add a real server ADDRESS:PORT to Virtual Service SERVICE."""
    body = {"address": address, "port": port}
    if weight is not None:
        body["weight"] = weight
    if disabled:
        body["enabled"] = False
    server = state.client.call("POST", f"/virtual-services/{service}/real-servers", json_body=body).body
    emit(state, server, lambda s: click.echo(f"Real server {ident(s)} added: {s.get('address')}:{s.get('port')}."))


@rs.command("set")
@click.argument("service", type=int)
@click.argument("server", type=int)
@click.argument("pairs", nargs=-1, required=True, metavar="FIELD=VALUE...")
@pass_state
def rs_set(state, service, server, pairs):
    """Change a real server (address, port, weight, enabled)."""
    path = f"/virtual-services/{service}/real-servers/{server}"
    emit(state, state.client.call("PATCH", path, json_body=parse_settings(pairs)).body, fields)


@rs.command("delete")
@click.argument("service", type=int)
@click.argument("server", type=int)
@pass_state
def rs_delete(state, service, server):
    """Remove a real server."""
    answer = state.client.call("DELETE", f"/virtual-services/{service}/real-servers/{server}").body
    emit(state, answer or {}, lambda _: click.echo(f"Real server {server} removed."))


# --- backup and restore --------------------------------------------------------------------


def attachment_name(headers):
    """The file name the API suggests, reduced to a plain name in the current directory."""
    disposition = headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename":
            value = os.path.basename(value.strip().strip('"'))
            if value not in ("", ".", ".."):
                return value
    return "flotilla-backup"


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, writable=True))
@click.option("--include-users", is_flag=True, help="Include the WUI's users and their API keys.")
@click.option("--passphrase", envvar="FLOTILLA_BACKUP_PASSPHRASE", help="Encrypt the backup with it.")
@pass_state
def backup(state, file, include_users, passphrase):
    """Download a backup of the cluster to FILE (default: the name the cluster gives it)."""
    if passphrase:
        body = {"include_users": include_users, "passphrase": passphrase}
        response = state.client.open("POST", "/backup", json_body=body)
    else:
        response = state.client.open("GET", "/backup", query={"include_users": 1 if include_users else None})
    with response:
        file = file or attachment_name(response.headers)
        length = response.headers.get("Content-Length")
        partial, size = f"{file}.part", 0
        # Written beside FILE and moved over it whole: a broken download never leaves half a backup.
        with (
            open(partial, "wb") as out,
            click.progressbar(length=int(length) if length else None, label="Downloading", file=sys.stderr) as bar,
        ):
            try:
                while chunk := response.read(api.CHUNK):
                    out.write(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            except OSError as exc:
                os.unlink(partial)
                raise ApiError(f"The download broke off after {size} bytes: {exc}", api.UNREACHABLE) from None
        os.replace(partial, file)
    emit(state, {"file": file, "size": size}, lambda d: click.echo(f"Backup saved to {d['file']} ({d['size']} bytes)."))


def send_file(state, path, field, filename, form):
    """Upload the file with a progress bar (bytes sent, on stderr)."""
    size = os.path.getsize(filename)
    with click.progressbar(length=size, label=f"Uploading {os.path.basename(filename)}", file=sys.stderr) as bar:
        return state.client.upload(path, field, filename, form, progress=bar.update)


upload_file = click.Path(exists=True, dir_okay=False, readable=True)


@cli.command()
@click.argument("file", type=upload_file)
@click.option("--passphrase", envvar="FLOTILLA_BACKUP_PASSPHRASE", help="The passphrase the backup was made with.")
@click.option("--convert", is_flag=True, help="Restore a backup of another kind of unit, converting it.")
@no_wait_option
@pass_state
def restore(state, file, passphrase, convert, no_wait):
    """Restore the cluster from a backup FILE."""
    form = {}
    if passphrase:
        form["passphrase"] = passphrase
    if convert:
        form["convert"] = "1"
    follow(state, send_file(state, "/restore", "backup", file, form), no_wait)


# --- software ------------------------------------------------------------------------------


@cli.group()
def software():
    """Software updates and the rolling reboot."""


@software.command("show")
@pass_state
def software_show(state):
    """The running versions, the patches kept, and the rollout under way."""

    def human(s):
        click.echo(f"Running versions: {cell(s.get('running_versions'))}")
        click.echo("Patches kept:")
        table(s.get("kept") or [], [("VERSION", "version"), ("SHA256", "sha256"), ("SIZE", "size")])
        if s.get("rollout"):
            click.echo(f"Rollout: {cell(s['rollout'])}")

    emit(state, state.client.get("/software"), human)


def upload_patch(state, file, allow_downgrade):
    form = {"allow_downgrade": "1"} if allow_downgrade else {}
    return send_file(state, "/software", "patch", file, form).body


def say_kept(patch):
    click.echo(f"Version {patch.get('version')} transferred and validated (sha256 {patch.get('sha256')}).")


downgrade_option = click.option("--allow-downgrade", is_flag=True, help="Accept a version older than the running one.")


@software.command("upload")
@click.argument("file", type=upload_file)
@downgrade_option
@pass_state
def software_upload(state, file, allow_downgrade):
    """Transfer and validate a patch FILE (install it with `software install`)."""
    emit(state, upload_patch(state, file, allow_downgrade), say_kept)


@software.command("install")
@click.argument("sha256")
@no_wait_option
@pass_state
def software_install(state, sha256, no_wait):
    """Install a kept patch (by its SHA256) on every node, one node at a time."""
    follow(state, state.client.call("POST", "/software/install", json_body={"sha256": sha256}), no_wait)


@software.command("update")
@click.argument("file", type=upload_file)
@downgrade_option
@no_wait_option
@pass_state
def software_update(state, file, allow_downgrade, no_wait):
    """Upload a patch FILE and install it: the whole software update."""
    patch = upload_patch(state, file, allow_downgrade)
    if not state.json:
        say_kept(patch)
    follow(state, state.client.call("POST", "/software/install", json_body={"sha256": patch["sha256"]}), no_wait)


@software.command("rolling-reboot")
@no_wait_option
@pass_state
def software_rolling_reboot(state, no_wait):
    """Reboot every node, one at a time, each drained first and back in rotation before the next."""
    follow(state, state.client.call("POST", "/software/rolling-reboot"), no_wait)


@software.command("resume")
@pass_state
def software_resume(state):
    """Resume a halted rollout."""
    finish(state, state.client.call("POST", "/software/resume").body)


@software.command("cancel")
@pass_state
def software_cancel(state):
    """Cancel the rollout under way."""
    finish(state, state.client.call("POST", "/software/cancel").body)


# --- logs ----------------------------------------------------------------------------------


@cli.command()
@click.argument("kind", type=click.Choice(["system", "warning"]), default="system")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@pass_state
def logs(state, kind, limit):
    """The System (or Warning) Message File, newest first."""
    entries = state.client.get(f"/logs/{kind}", limit=limit)
    emit(
        state,
        entries,
        lambda rows: table(rows, [("TIME", "time"), ("LEVEL", "level"), ("NODE", "node"), ("MESSAGE", "message")]),
    )


def main(argv=None):
    """The console script: runs the command and exits with the code its outcome means."""
    try:
        code = cli.main(args=argv, prog_name="flotilla", standalone_mode=False)
    except ApiError as exc:
        # With --json a refusal's own JSON goes to stdout too, for the script reading it.
        if State.current is not None and State.current.json and exc.body is not None:
            click.echo(json.dumps(exc.body, indent=2))
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else api.OK)
