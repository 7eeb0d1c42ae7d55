"""The REST API as the command-line client sees it: requests carrying the key, the API's refusals turned
into exit codes, uploads and downloads streamed in chunks.

The standard library and click only: this runs on an operator's machine, not on the cluster.
"""

import contextlib
import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid

import click

# The exit codes scripts rely on (README, "Command-line client").
OK = 0
REFUSED = 1  # the API refused the request (400, 404, 409, 413 ...): its reason is printed
USAGE = 2  # the command line itself is wrong (click's own code for usage errors)
AUTH = 3  # no key, a bad or revoked key, or a read-only key asked to change something (401, 403)
STALE = 4  # the configuration changed since the generation given with --generation (409 with a generation)
UNREACHABLE = 5  # no answer from the cluster, a TLS failure, a 5xx, or an answer that is not the API's
FAILED = 6  # a long operation ended failed or halted

CHUNK = 64 * 1024
UPLOAD_ANSWER_SECONDS = 300
API = "/api/v1"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class ApiError(click.ClickException):
    """A request that did not succeed: the reason to print, the exit code, and the API's JSON if any."""

    def __init__(self, message, exit_code, body=None):
        super().__init__(message)
        self.exit_code = exit_code
        self.body = body


class NoRedirect(urllib.request.HTTPRedirectHandler):
    # The API never redirects; following one (to a login page, say) would only hide what went wrong.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def tls_context(ca_cert=None, insecure=False):
    """Verify the cluster's certificate (against ``ca_cert`` when given); ``insecure`` verifies nothing."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise click.BadParameter(f"cannot read {ca_cert}: {exc}", param_hint="--ca-cert") from exc


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body


class Client:
    def __init__(self, url, key, ca_cert=None, insecure=False, timeout=30.0, generation=None):
        parsed = urllib.parse.urlsplit(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise click.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="--url")
        self.base = url.rstrip("/").removesuffix(API)
        self.key = key
        self.timeout = timeout
        self.generation = generation
        self.context = tls_context(ca_cert, insecure)
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.context), NoRedirect())

    def url(self, path, query=None):
        if not path.startswith(API):
            path = API + path
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def headers(self, method, content_type=None, length=None):
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        if method in WRITES and self.generation is not None:
            headers["If-Match"] = f'"{self.generation}"'
        return headers

    def open(self, method, path, *, query=None, json_body=None):
        """The open response of a successful request (the caller reads it); ApiError otherwise."""
        data = content_type = None
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        url = self.url(path, query)
        headers = self.headers(method, content_type, len(data) if data is not None else None)
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise error_from(exc.code, exc.headers, exc.read(), url) from None
        except urllib.error.URLError as exc:
            raise unreachable(url, exc.reason) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset, a timeout, a bad port
            raise unreachable(url, exc) from None

    def call(self, method, path, **kwargs):
        """A request whose answer is JSON (or empty): the Response with the parsed body."""
        with self.open(method, path, **kwargs) as response:
            raw = response.read()
            url = response.url
            status, headers = response.status, response.headers
        return Response(status, headers, parse_json(raw, headers, url, status) if raw else None)

    def get(self, path, **query):
        return self.call("GET", path, query=query or None).body

    def upload(self, path, field, filename, fields=None, progress=None):
        """POST the file at ``filename`` as the multipart field ``field``, streamed in chunks (never
        read whole; ``progress(n)`` is told of every chunk sent): the Response, or ApiError.

        Over http.client rather than urllib: the cluster may refuse before it has the whole file (413,
        too large) and close; that answer is read and reported, not the broken pipe the rest of the
        file may then meet.
        """
        content_type, length, body = multipart(field, filename, fields or {}, progress)
        url = self.url(path)
        parts = urllib.parse.urlsplit(url)
        # The answer comes once the whole file is checked (a patch's signature and every checksum): allow for it.
        timeout = max(self.timeout, UPLOAD_ANSWER_SECONDS)
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=self.context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        with contextlib.closing(connection):
            try:
                connection.putrequest("POST", parts.path, skip_accept_encoding=True)
                for name, value in self.headers("POST", content_type, length).items():
                    connection.putheader(name, value)
                connection.endheaders()
            except (OSError, ValueError) as exc:
                raise unreachable(url, exc) from None
            broken = None
            try:
                for chunk in body:
                    connection.send(chunk)
            except OSError as exc:
                broken = exc
            try:
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise unreachable(url, broken or exc) from None
        if not 200 <= response.status < 300:
            raise error_from(response.status, response.headers, raw, url)
        if broken is not None:  # an answer of success to half a file: nothing to trust
            raise unreachable(url, broken)
        body = parse_json(raw, response.headers, url, response.status) if raw else None
        return Response(response.status, response.headers, body)


def parse_json(raw, headers, url, status):
    try:
        return json.loads(raw)
    except ValueError:
        kind = headers.get("Content-Type", "no content type")
        raise ApiError(f"{url} answered HTTP {status} ({kind}), not the Flotilla API's JSON", UNREACHABLE) from None


def unreachable(url, reason):
    if isinstance(reason, ssl.SSLCertVerificationError):
        hint = " (give the cluster's CA certificate with --ca-cert, or --insecure to skip the check)"
        return ApiError(f"Could not verify the certificate of {url}: {reason.verify_message}{hint}", UNREACHABLE)
    return ApiError(f"Could not reach the cluster at {url}: {reason}", UNREACHABLE)


def error_from(status, headers, raw, url):
    """The ApiError for an HTTP error answer: the API's own reason, and the exit code its status means."""
    body = None
    with contextlib.suppress(ValueError):
        body = json.loads(raw) if raw else None
    detail = body.get("detail") if isinstance(body, dict) else None
    if not detail:
        detail = f"{url} answered HTTP {status}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        for field, messages in errors.items():
            messages = messages if isinstance(messages, list) else [messages]
            detail += "".join(f"\n  {field}: {m}" for m in messages)
    if status in (401, 403):
        code = AUTH
    elif status == 409 and isinstance(body, dict) and "generation" in body:
        code = STALE
    elif status >= 500 or status < 400:  # a 5xx, or a redirect the API never answers with
        code = UNREACHABLE
    else:
        code = REFUSED
    return ApiError(detail, code, body)


def _quoted(text):
    # A header parameter: the name as is, but no quote or line break can end it early.
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


def multipart(field, filename, fields, progress=None):
    """(content type, length, body chunks) of a multipart/form-data body holding ``fields`` and the file.

    The length is known beforehand (the parts' headers plus the file's size), so the body goes as a
    plain stream with a Content-Length, one chunk of the file at a time.
    """
    boundary = uuid.uuid4().hex
    head = b""
    for name, value in fields.items():
        head += f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'.encode()
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(field)}"; '
        f'filename="{_quoted(os.path.basename(filename))}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = os.path.getsize(filename)

    def chunks():
        yield head
        with open(filename, "rb") as file:
            while chunk := file.read(CHUNK):
                if progress:
                    progress(len(chunk))
                yield chunk
        yield tail

    return f"multipart/form-data; boundary={boundary}", len(head) + size + len(tail), chunks()
