from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@login_not_required
@require_GET
def health(request):
    """For load balancers and the harness: the WUI answers (no login, no database)."""
    return JsonResponse({"ok": True})
