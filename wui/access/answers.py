"""What the /access API answers, written once as XML (/access) and once as JSON (/accessv2).

A command's result is a dict of LoadMaster element names: a value is text (numbers and "Y"/"N" as
they are), a dict is an element holding others, a list repeats the element once per item.
"""

import base64
import json
from dataclasses import dataclass
from xml.etree import ElementTree

from django.http import HttpResponse

OK_MESSAGE = "Command successfully executed"


class Failure(Exception):
    """The command was refused or failed; ``reason`` is for the script's operator, ``status`` the HTTP status."""

    def __init__(self, reason, status=422):
        super().__init__(reason)
        self.reason = str(reason)
        self.status = status


@dataclass
class File:
    """A file to download (a backup)."""

    data: bytes
    filename: str


def _fill(parent, data):
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            element = ElementTree.SubElement(parent, name)
            if isinstance(item, dict):
                _fill(element, item)
            elif item is not None:
                element.text = str(item)


def xml(data=None, failure=None):
    """``<Response stat="200" code="ok"><Success><Data>...`` or ``<Response stat="4xx" code="fail"><Error>...``."""
    if isinstance(data, File):
        return _file(data)
    status = failure.status if failure else 200
    root = ElementTree.Element("Response", {"stat": str(status), "code": "fail" if failure else "ok"})
    if failure:
        ElementTree.SubElement(root, "Error").text = failure.reason
    else:
        _fill(ElementTree.SubElement(ElementTree.SubElement(root, "Success"), "Data"), data or {})
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8")
    return _answer(HttpResponse(body, content_type="text/xml; charset=utf-8", status=status), failure)


def _json_value(value):
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def json_answer(data=None, failure=None):
    """``{"code": 200, "message": ..., "status": "ok", <data>}``, or on failure
    ``{"code": 4xx, "message": reason, "status": "fail"}``."""
    if isinstance(data, File):
        data = {"filename": data.filename, "file": base64.b64encode(data.data).decode()}
    status = failure.status if failure else 200
    document = {"code": status, "message": failure.reason if failure else OK_MESSAGE}
    document["status"] = "fail" if failure else "ok"
    if not failure:
        document.update(_json_value(data or {}))
    response = HttpResponse(json.dumps(document), content_type="application/json", status=status)
    return _answer(response, failure)


def _answer(response, failure):
    if failure is not None and failure.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="flotilla"'
    response["Cache-Control"] = "no-store"
    return response


def _file(file):
    response = HttpResponse(file.data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{file.filename}"'
    response["Cache-Control"] = "no-store"
    return response
