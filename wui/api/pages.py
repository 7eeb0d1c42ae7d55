"""System Administration > API Keys: an operator makes keys for scripts, sees when each was last used, revokes them.

A new key is shown once, on the page that answers its creation, and never again: only its hash is kept.
"""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import events
from wui.api import keys


class KeyForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=64,
        help_text="What the key is for, such as nightly-backup",
        error_messages={"required": "Name: say what the key is for", "max_length": "Name: at most 64 characters"},
    )
    access = forms.ChoiceField(
        label="Access",
        choices=[("read-only", "Read-only: may only read"), ("full", "Full: may change the cluster")],
        initial="read-only",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Access: choose read-only or full",
            "invalid_choice": "Access: choose read-only or full",
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, label_suffix="", **kwargs)


def _visible(user):
    """An operator's own keys; a superuser sees (and may revoke) everyone's."""
    rows = keys.ApiKey.objects.select_related("user")
    return rows if user.is_superuser else rows.filter(user=user)


def api_keys(request):
    form = KeyForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            key, raw = keys.create(request.user, form.cleaned_data["name"], form.cleaned_data["access"] == "read-only")
            events.operator_action(events.Actor.of(request), f"API key {key.name} ({key.prefix}, {key.access}) created")
            created = {"key": key, "raw": raw}
            form = KeyForm()
        else:
            status = 400
    context = {"title": "API Keys", "form": form, "created": created, "keys": _visible(request.user)}
    return render(request, "wui/api_keys.html", context, status=status)


@require_POST
def revoke(request, pk):
    key = get_object_or_404(_visible(request.user), pk=pk)
    if key.revoked_at is None:
        keys.revoke(key)
        events.operator_action(events.Actor.of(request), f"API key {key.name} ({key.prefix}) revoked")
        messages.success(request, f"API key {key.name} ({key.prefix}) revoked: it is refused from now on.")
    return redirect("api_keys")
