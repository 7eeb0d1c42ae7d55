"""Virtual Services > View/Modify Services: forms, the cluster's restrictions (seed 2.2) and thin views.

Every change locks the cluster row first: it serialises configuration changes (so two operators
cannot both pass a check that only one of them may pass, nor both take the next generation
number) and fixes whether the restrictions apply for the whole change.
"""

from django import forms

from cluster.models import RealServer, VirtualService
from cluster.network.document import is_host
from nodes.agent.formats import CHECK_URL, CHECK_URL_TEXT
from wui.forms import ranged

# --- forms ---------------------------------------------------------------------


def ipv4(label):
    message = f"{label}: enter an IPv4 address, such as 10.0.0.5"
    return forms.GenericIPAddressField(
        label=label, protocol="IPv4", error_messages={"invalid": message, "required": message}
    )


def usable(label, value):
    if not is_host(value):
        raise forms.ValidationError(f"{label}: {value} is not a host address")
    return value


def reasons(form):
    return [e for errors in form.errors.values() for e in errors]


HINTS = {
    "port": "Valid Values: 1-65535",
    "layer": "Layer 7 in a cluster",
    "persistence_timeout": "seconds (Valid Values: 1-604800)",
    "transparency": "not possible in a cluster",
    "subnet_originating": "always on in a cluster",
    "check_url": "a path, such as /health",
    "check_status": "Valid Values: 100-599",
    "interface": "only the primary interface in a cluster",
}


class VirtualServiceForm(forms.ModelForm):
    name = forms.CharField(
        label="Service Name", max_length=64, error_messages={"required": "Service Name: enter a name"}
    )
    address = ipv4("Virtual Address")
    port = ranged("Port", 1, 65535)
    persistence_timeout = ranged("Persistence Timeout", 1, 604800)
    check_url = forms.RegexField(
        label="Health Check URL",
        regex=rf"^{CHECK_URL.pattern}$",
        max_length=255,
        error_messages={m: f"Health Check URL: enter {CHECK_URL_TEXT}" for m in ("invalid", "required", "max_length")},
    )
    check_status = ranged("Expected HTTP Status", 100, 599)
    interface = forms.RegexField(
        label="Interface",
        regex=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$",
        error_messages={m: "Interface: enter an interface name, such as eth0" for m in ("invalid", "required")},
    )

    class Meta:
        model = VirtualService
        fields = [
            "name",
            "address",
            "port",
            "protocol",
            "layer",
            "scheduling",
            "persistence",
            "persistence_timeout",
            "transparency",
            "subnet_originating",
            "check_url",
            "check_status",
            "interface",
            "enabled",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, label_suffix="", **kwargs)
        for name, hint in HINTS.items():
            self.fields[name].help_text = hint
        for field in self.fields.values():
            if isinstance(field, forms.ChoiceField):
                message = f"{field.label}: choose {' or '.join(str(label) for _, label in field.choices)}"
                field.error_messages.update(invalid_choice=message, required=message)

    def clean_address(self):
        return usable("Virtual Address", self.cleaned_data["address"])

    def validate_unique(self):
        address, port = self.cleaned_data.get("address"), self.cleaned_data.get("port")
        other = VirtualService.objects.filter(address=address, port=port).exclude(pk=self.instance.pk).first()
        if other:
            self.add_error("port", f"Port: {address}:{port} is already used by Virtual Service {other.name}")


class RealServerForm(forms.ModelForm):
    address = ipv4("Real Server Address")
    port = ranged("Real Server Port", 1, 65535)
    weight = ranged("Weight", 1, 65535)

    class Meta:
        model = RealServer
        fields = ["address", "port", "weight", "enabled"]

    def clean_address(self):
        return usable("Real Server Address", self.cleaned_data["address"])

    def validate_unique(self):
        address, port = self.cleaned_data.get("address"), self.cleaned_data.get("port")
        siblings = RealServer.objects.filter(virtual_service=self.instance.virtual_service_id)
        if siblings.filter(address=address, port=port).exclude(pk=self.instance.pk).exists():
            self.add_error("port", f"Real Server Port: {address}:{port} is already a real server of this service")
