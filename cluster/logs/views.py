"""System Log Files: the System Message File and the Warning Message File, read from Event rows."""

from datetime import UTC
from urllib.parse import urlencode

from django import forms
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from cluster.models import Event

FILES = {"system": "System Message File", "warning": "Warning Message File"}
PAGE_LINES = 500


class LogFilter(forms.Form):
    file = forms.ChoiceField(
        choices=list(FILES.items()),
        required=False,
        error_messages={"invalid_choice": "Unknown log file “%(value)s”: choose system or warning."},
    )
    node = forms.IntegerField(
        min_value=0,
        max_value=32767,  # the range of Event.node_number: a larger number would fail in the database
        required=False,
        error_messages={
            "invalid": "Node must be a node number, such as 3.",
            "min_value": "Node must be a node number, such as 3.",
            "max_value": "Node must be a node number, such as 3.",
        },
    )
    level = forms.ChoiceField(
        choices=Event.Level.choices,
        required=False,
        error_messages={"invalid_choice": "Unknown level “%(value)s”: choose info or warning."},
    )

    def clean_file(self):
        return self.cleaned_data["file"] or "system"

    def events(self):
        data = self.cleaned_data
        events = Event.objects.select_related("user")
        if data["file"] == "warning":
            events = events.filter(level=Event.Level.WARNING)
        if data["node"] is not None:
            events = events.filter(node_number=data["node"])
        if data["level"]:
            events = events.filter(level=data["level"])
        return events

    def current(self):
        """The filters in force; a value that did not validate falls back to its default."""
        return {"file": "system", "node": None, "level": "", **self.cleaned_data}

    def query(self, **changes):
        data = {**self.current(), **changes}
        return "?" + urlencode({k: "" if data[k] is None else data[k] for k in ("file", "node", "level")})

    def tabs(self):
        return [(key, label, self.query(file=key)) for key, label in FILES.items()]

    def error_text(self):
        return [e for errors in self.errors.values() for e in errors]


def line(event):
    # One event per line, whatever the message holds: a stray newline would read as a second event.
    message = " ".join(event.message.splitlines())
    return f"{event.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} {event.level} {message}"


def _node_numbers():
    return (
        Event.objects.exclude(node_number=None).order_by("node_number").values_list("node_number", flat=True).distinct()
    )


@require_GET
def system_logs(request):
    form = LogFilter(request.GET)
    valid = form.is_valid()
    context = {"form": form, "current": form.current(), "node_numbers": _node_numbers(), "page_lines": PAGE_LINES}
    if not valid:
        context["errors"] = form.error_text()
        return render(request, "cluster/logs.html", context, status=400)
    # One row past the limit tells whether the page is cut, without a COUNT query.
    events = list(form.events()[: PAGE_LINES + 1])
    context.update(events=events[:PAGE_LINES], cut=len(events) > PAGE_LINES, download=form.query())
    return render(request, "cluster/logs.html", context)


@require_GET
def system_logs_download(request):
    form = LogFilter(request.GET)
    if not form.is_valid():
        return HttpResponse(" ".join(form.error_text()) + "\n", status=400, content_type="text/plain; charset=utf-8")
    lines = (line(event) + "\n" for event in form.events().iterator(chunk_size=2000))
    response = StreamingHttpResponse(lines, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{form.cleaned_data["file"]}.txt"'
    return response
