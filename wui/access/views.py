"""/access/<command> (query parameters, XML answers) and /accessv2 (a JSON object, JSON answers).

Both look the command up in one table, authenticate the same way and run the same handler; only
where the parameters come from and how the answer is written differ. They are for scripts, which
prove who they are on every request (never with the session cookie), so CSRF does not apply.
"""

import json

from auditlog.context import set_actor
from django.conf import settings
from django.views.decorators.csrf import csrf_exempt

from cluster.events import Actor
from wui.access import answers, auth, commands
from wui.access.answers import Failure
from wui.access.call import Call

UNKNOWN_COMMAND = "Unknown command"
MAX_JSON_BYTES = 64 * 1024


def _run(request, name, params, write, via_json=False, caller=None):
    try:
        caller = caller or auth.caller(request, params)
        command = _command(name, via_json)
        if command.changes and caller.read_only:
            raise Failure("This API key is read-only: it may not change anything", 403)
        actor = Actor(caller.user, request.META.get("REMOTE_ADDR"))
        call = Call({k.lower(): v for k, v in params.items()}, caller, actor, request)
        # The audit log names the API's caller, as it names the WUI's user.
        with set_actor(caller.user, remote_addr=actor.address):
            data = command.handler(call)
    except Failure as failure:
        return write(failure=failure)
    return write(data)


def _command(name, via_json):
    role = settings.FLOTILLA_ROLE
    name = name.strip("/").lower()
    command = commands.table(role).get(name)
    if command is None:
        if name in commands.other_table(role):
            raise Failure(f"{name} runs {commands.ELSEWHERE[role]}")
        raise Failure(UNKNOWN_COMMAND, 400)
    if via_json and not command.json_body:
        raise Failure(f"{name} takes its file as the request's body: send it to /access/{name}")
    return command


@csrf_exempt
def access(request, command):
    params = dict(request.GET.items())
    return _run(request, command, params, answers.xml)


@csrf_exempt
def accessv2(request):
    body = request.read(MAX_JSON_BYTES + 1)
    try:
        params = json.loads(body) if body else None
    except ValueError:
        params = None
    given = params if isinstance(params, dict) else {}
    # Who calls comes first: a stranger learns nothing, not even what is wrong with the request.
    try:
        caller = auth.caller(request, given)
    except Failure as failure:
        return answers.json_answer(failure=failure)
    if request.method != "POST":
        return answers.json_answer(failure=Failure('Send a POST with a JSON object: {"cmd": ..., ...}', 405))
    if len(body) > MAX_JSON_BYTES:
        return answers.json_answer(failure=Failure(f"The request is over {MAX_JSON_BYTES // 1024} KiB", 413))
    if not isinstance(params, dict):
        return answers.json_answer(failure=Failure('The body must be a JSON object with "cmd"', 400))
    name = str(params.pop("cmd", "")).replace(".", "/")
    params = {k: v for k, v in params.items() if not isinstance(v, dict | list)}
    return _run(request, name, params, answers.json_answer, via_json=True, caller=caller)
