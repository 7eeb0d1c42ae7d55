"""Network Setup on the shared address: the interfaces every node has, and each node's address on them.

A change is checked in full before anything is written; a refused change
leaves no trace (no event, no configuration generation). An accepted one is
recorded as an operator action and committed as a new generation in the same
transaction.
"""

from django import forms

from cluster.models import Interface
from cluster.network.document import host, parse_address, parse_interface_address
from nodes.agent.formats import MTU
from wui.forms import ranged

# --- forms -------------------------------------------------------------------


class InterfaceForm(forms.Form):
    """A form for one interface's setting, shown filled in with what the interface has now."""

    def __init__(self, *args, interface, **kwargs):
        self.interface = interface
        kwargs.setdefault("initial", {name: getattr(interface, name, None) for name in self.base_fields})
        super().__init__(*args, **kwargs)


class InterfaceAddressField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=49, **kwargs)
        self.error_messages["max_length"] = f"{kwargs['label']}: enter an IPv4 address/prefix such as 10.0.0.5/24"

    def clean(self, value):
        value = super().clean(value)
        return parse_interface_address(value, self.label) if value else ""


class AddressesForm(InterfaceForm):
    """One address per node; a blank one means the node has no address on this interface."""

    def __init__(self, *args, interface, **kwargs):
        super().__init__(*args, interface=interface, **kwargs)
        self.sides = list(interface.node_interfaces.select_related("node").order_by("node__number"))
        for side in self.sides:
            self.fields[f"node_{side.node.number}"] = InterfaceAddressField(
                label=f"Interface Address for node {side.node.number}", required=False, initial=side.address
            )

    def clean(self):
        seen = {}
        for name, value in (self.cleaned_data or {}).items():
            if value and host(value) in seen:
                raise forms.ValidationError(
                    f"{self.fields[name].label}: {host(value)} is also given to {seen[host(value)]}"
                )
            seen[host(value)] = self.fields[name].label.removeprefix("Interface Address for ")
        return self.cleaned_data


class SharedAddressForm(InterfaceForm):
    cluster_shared_address = forms.CharField(label="Cluster Shared IP address", max_length=15, required=False)

    def clean_cluster_shared_address(self):
        value = self.cleaned_data["cluster_shared_address"].strip()
        return parse_address(value, "Cluster Shared IP address") if value else None


class OptionsForm(InterfaceForm):
    use_for_cluster_checks = forms.BooleanField(label="Use for Cluster checks", required=False)
    use_for_cluster_updates = forms.BooleanField(label="Use for Cluster Updates", required=False)
    use_for_geo = forms.BooleanField(label="Use for GEO Responses and Requests", required=False)


LINK_MESSAGE = "Link Status: choose Automatic or one of the listed speeds and duplex settings"


class LinkForm(InterfaceForm):
    link_mode = forms.ChoiceField(
        label="Link Status",
        choices=Interface.LinkMode.choices,
        error_messages={"invalid_choice": LINK_MESSAGE, "required": LINK_MESSAGE},
    )


class MtuForm(InterfaceForm):
    mtu = ranged(MTU)


class AddAddressForm(InterfaceForm):
    address = InterfaceAddressField(
        label="Additional addresses",
        error_messages={"required": "Additional addresses: enter an IPv4 address/prefix such as 10.0.0.5/24"},
    )


class RemoveAddressForm(InterfaceForm):
    address = forms.CharField(label="Additional addresses", max_length=49)

    def clean_address(self):
        value = self.cleaned_data["address"]
        if value not in self.interface.additional_addresses:
            raise forms.ValidationError(f"Additional addresses: {value} is not an additional address of this interface")
        return value
