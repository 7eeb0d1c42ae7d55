"""`flotilla`: the cluster from a shell, over the REST API with an API key.

It runs on an operator's machine: the standard library and click only, nothing of the product's own
(no Django). Human output is short tables and sentences with the API's own reasons; ``--json`` prints
the API's JSON. The exit codes are in ``client`` and the README.
"""

import json
import os
import sys
from importlib import metadata

import click

from wui.cli import client as api
from wui.cli import cluster, files, services
from wui.cli.base import Group, State
from wui.cli.client import ApiError


def _version():
    try:
        return metadata.version("flotilla")
    except metadata.PackageNotFoundError:
        return "(not installed)"


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


for command in (
    cluster.status,
    cluster.nodes,
    cluster.parameters,
    services.vs,
    services.rs,
    files.backup,
    files.restore,
    files.software,
    cluster.operation,
    cluster.logs,
):
    cli.add_command(command)


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
    except BrokenPipeError:
        # `flotilla logs | head`: the reader has had enough; say nothing more on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(api.OK)
    sys.exit(code if isinstance(code, int) else api.OK)
