"""One /access command as its handler sees it: the parameters, who calls, and the request's body."""

from dataclasses import dataclass

from cluster.events import Actor
from wui.access.answers import Failure
from wui.access.auth import Caller

TRUE = {"y", "yes", "1", "true", "on"}
FALSE = {"n", "no", "0", "false", "off"}


@dataclass
class Call:
    params: dict  # names in lower case: LoadMaster's parameter names are not case-sensitive
    caller: Caller
    actor: Actor
    request: object

    def get(self, name, default=None):
        value = self.params.get(name.lower())
        return default if value is None else str(value).strip()

    def has(self, name):
        return name.lower() in self.params

    def require(self, name):
        value = self.get(name)
        if not value:
            raise Failure(f"Missing parameter: {name}")
        return value

    def integer(self, name, default=None, low=None, high=None):
        value = self.get(name) if default is None else self.get(name, str(default))
        if not value:
            raise Failure(f"Missing parameter: {name}")
        if not value.isdigit() or (low is not None and int(value) < low) or (high is not None and int(value) > high):
            where = f" from {low} to {high}" if high is not None else ""
            raise Failure(f"Invalid {name}: {value[:20]!r} is not a whole number{where}")
        return int(value)

    def flag(self, name, default=None):
        """Y/N (also yes/no, 1/0, true/false), or ``default`` when absent."""
        value = self.get(name)
        if value is None or value == "":
            return default
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise Failure(f"Invalid {name}: {value[:20]!r}; use Y or N")


def yn(value):
    return "Y" if value else "N"
