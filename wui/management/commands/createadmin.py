import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the first administrator (or reset its password). Prints a generated password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-from-env", action="store_true", help="take the password from FLOTILLA_ADMIN_PASSWORD"
        )

    def handle(self, username, password_from_env, **options):
        password = os.environ.get("FLOTILLA_ADMIN_PASSWORD") if password_from_env else None
        if password_from_env and not password:
            raise CommandError("FLOTILLA_ADMIN_PASSWORD is not set")
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Updated'} administrator {username}")
        if generated:
            self.stdout.write(f"Login: {username} / {password}")
