"""The WUI Certificate page: the certificate in use, and the upload of the operator's own pair."""

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from cluster import events
from cluster.certificates import rules
from wui import tls
from wui.uploads import streamed_upload


def _too_large(request, size):
    return _page(
        request,
        status=413,
        error=f"The files are too large: a certificate or key is at most "
        f"{tls.MAX_PEM_BYTES // 1024} KiB. Nothing was changed.",
    )


def _read(upload):
    if upload is None:
        return None
    if upload.size > tls.MAX_PEM_BYTES:
        raise rules.Refused(f"{upload.name} is larger than {tls.MAX_PEM_BYTES // 1024} KiB: not a certificate or key")
    return upload.read()


@require_http_methods(["GET", "POST"])
@streamed_upload(lambda: settings.VAR_DIR / "incoming-certificates", ".pem", lambda: 2 * tls.MAX_PEM_BYTES, _too_large)
def wui_certificate(request):
    if request.method == "GET":
        return _page(request)
    try:
        certificate, key = _read(request.FILES.get("certificate")), _read(request.FILES.get("key"))
        if not certificate or not key:
            raise rules.Refused("Choose both the certificate file and its private key file")
        described = rules.replace(certificate, key, events.Actor.of(request))
    except rules.Refused as exc:
        return _page(request, status=400, error=f"{exc}. Nothing was changed: the WUI serves the same certificate.")
    return _page(
        request,
        notice=f"The WUI now serves your certificate (SHA-256 {described['fingerprint']}) on every new connection.",
    )


def _page(request, status=200, error=None, notice=None):
    context = {"certificate": rules.current(), "error": error, "notice": notice, "max_kib": tls.MAX_PEM_BYTES // 1024}
    return render(request, "cluster/wui_certificate.html", context, status=status)
