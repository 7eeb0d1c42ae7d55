"""What the commands share: the run's options, the output (tables, sentences or the API's JSON), progress
bars, and following a long operation to its end."""

import json
import sys
import time

import click

from wui.cli import client as api
from wui.cli.client import ApiError, Client

POLL_SECONDS = 0.5
# How long a long operation may go unanswered before the client gives up on it: a rolling reboot
# or a restore restarts the admin node, and with it the API on the shared address.
PATIENCE_SECONDS = 180


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


class NoBar:
    def update(self, n_steps):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress(length, label):
    """A progress bar of bytes on stderr, drawn on a terminal only: a script's log gets no bar lines."""
    if not length or not sys.stderr.isatty():
        return NoBar()
    return click.progressbar(length=length, label=label, file=sys.stderr)


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


def say_operation(op):
    click.echo(f"{op.get('kind')} {op['id']} {op.get('state')}: {op.get('message', '')}")


def finish(state, op):
    """The operation's end: printed, and exit 6 if it failed or halted."""
    if op.get("state") in ("failed", "halted"):
        raise ApiError(f"{op.get('kind')} {op['id']} {op['state']}: {op.get('message', '')}", api.FAILED, op)
    emit(state, op, say_operation)


def follow(state, response, no_wait):
    """A 202 answer's operation, waited for (or its id printed with --no-wait); any other answer as is
    (a restore that needs no reboot is done at once)."""
    op = response.body
    if response.status != 202 or not isinstance(op, dict) or "id" not in op:
        emit(state, op, lambda b: click.echo((b or {}).get("detail") or "Done."))
        return
    if no_wait:
        emit(state, op, lambda o: click.echo(o["id"]))
        if not state.json:
            click.echo(f"Started; follow it with: flotilla operation {op['id']} --wait", err=True)
        return
    finish(state, wait(state, op))


no_wait_option = click.option("--no-wait", is_flag=True, help="Print the operation's id and return at once.")
