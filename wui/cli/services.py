"""Virtual Services and their real servers."""

import click

from wui.cli.base import Group, emit, fields, parse_settings, pass_state, table

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


@click.group(cls=Group)
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


@click.group(cls=Group)
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
