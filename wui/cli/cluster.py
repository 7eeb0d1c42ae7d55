"""The cluster and its nodes: status, nodes, parameters, operations and the message files."""

import urllib.parse

import click

from wui.cli.base import Group, cell, emit, fields, finish, follow, no_wait_option, pass_state, table, wait


@click.command()
@click.argument("operation_id", metavar="ID")
@click.option("--wait", "wait_", is_flag=True, help="Wait until it ends (exit 6 if it failed or halted).")
@pass_state
def operation(state, operation_id, wait_):
    """Show a long operation (join-5, update-2, ...), or wait for it to end."""
    op = state.client.get(f"/operations/{urllib.parse.quote(operation_id, safe='')}")
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


@click.command()
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


@click.group(cls=Group, invoke_without_command=True)
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
        emit(
            state, answer, lambda n: click.echo(f"Node {node} {past}; it is {n.get('status_text') or n.get('status')}.")
        )

    return command


nodes.command("enable", help="Put a node in rotation (it warms up, then takes its share).")(
    click.argument("node", type=int)(node_action("enable", "enabled"))
)
nodes.command("disable", help="Take a node out of rotation (its connections drain for the Node Drain Time).")(
    click.argument("node", type=int)(node_action("disable", "disabled"))
)
nodes.command("resync", help="Send the whole newest configuration to a node again.")(
    click.argument("node", type=int)(node_action("resync", "resync requested"))
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
    """Reboot a node onto an installed software update (one node out at a time, the admin node last)."""
    follow(state, state.client.call("POST", f"/nodes/{node}/reboot"), no_wait)


# --- parameters ----------------------------------------------------------------------------

PARAMETERS = ("virtual_id", "drain_time", "generation")


def show_parameters(c):
    click.echo(f"Cluster Virtual ID: {c.get('virtual_id')}")
    click.echo(f"Node Drain Time: {c.get('drain_time')} s")
    click.echo(f"Configuration generation: {c.get('generation')}")


@click.group(cls=Group)
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


# --- logs ----------------------------------------------------------------------------------


@click.command()
@click.argument("kind", type=click.Choice(["system", "warning"]), default="system")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--node", type=int, help="Only this node's lines.")
@click.option("--level", type=click.Choice(["info", "warning"]), help="Only lines of this level.")
@pass_state
def logs(state, kind, limit, node, level):
    """The System (or Warning) Message File, newest first."""
    entries = state.client.get(f"/logs/{kind}", limit=limit, node=node, level=level)
    emit(
        state,
        entries,
        lambda rows: table(rows, [("TIME", "time"), ("LEVEL", "level"), ("NODE", "node"), ("MESSAGE", "message")]),
    )
