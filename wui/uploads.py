"""File uploads streamed to disk, size-limited before the body is read (software updates, backups)."""

import tempfile
from functools import wraps

from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.views.decorators.csrf import csrf_exempt, csrf_protect

# Room for the multipart boundaries and the small fields around the file; the file itself is held to
# its limit exactly by the view's own check of what arrived.
FORM_OVERHEAD = 64 * 1024


def content_length(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class _DiskUpload(TemporaryUploadedFile):
    """Django's temporary upload file, made in ``directory`` rather than FILE_UPLOAD_TEMP_DIR: on the
    same file system as the files kept from it, keeping one is a single atomic rename."""

    def __init__(self, directory, suffix, name, content_type, charset, content_type_extra):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        file = tempfile.NamedTemporaryFile(prefix="upload-", suffix=suffix, dir=directory)
        UploadedFile.__init__(self, file, name, content_type, 0, charset, content_type_extra)


class StreamToDisk(TemporaryFileUploadHandler):
    """Streams every uploaded file to disk, whatever its size (FILE_UPLOAD_MAX_MEMORY_SIZE does not apply)."""

    def __init__(self, request, directory, suffix):
        super().__init__(request)
        self.directory, self.suffix = directory, suffix

    def new_file(self, *args, **kwargs):
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = _DiskUpload(
            self.directory, self.suffix, self.file_name, self.content_type, self.charset, self.content_type_extra
        )


def streamed_upload(directory, suffix, max_bytes, too_large):
    """A view whose POSTed files go to ``directory()``, and which answers ``too_large(request, size)``
    without reading a body larger than ``max_bytes()``.

    The upload handlers must be replaced before anything reads the body, and the CSRF check reads
    it: so the view is csrf_exempt outside and csrf_protect inside (Django docs, "Modifying upload
    handlers on the fly").
    """

    def decorate(view):
        protected = csrf_protect(view)

        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                request.upload_handlers = [StreamToDisk(request, directory(), suffix)]
                if content_length(request) > max_bytes() + FORM_OVERHEAD:
                    return too_large(request, content_length(request))
            return protected(request, *args, **kwargs)

        return wrapper

    return decorate
