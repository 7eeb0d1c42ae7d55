from django import forms

from nodes.agent.formats import DRAIN_TIME, VIRTUAL_ID
from wui.forms import ranged


class VirtualIdForm(forms.Form):
    virtual_id = ranged(VIRTUAL_ID)


class DrainTimeForm(forms.Form):
    drain_time = ranged(DRAIN_TIME)


class AddNodeForm(forms.Form):
    address = forms.GenericIPAddressField(
        label="Address", protocol="IPv4", error_messages={"invalid": "Address: enter the node's IPv4 address"}
    )
    code = forms.CharField(
        label="Join code",
        max_length=16,
        error_messages={"required": "Join code: enter the code the node shows after Add to Cluster"},
    )
    fingerprint = forms.CharField(label="Host key fingerprint (optional)", max_length=64, required=False)


class ModeForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[("ha", "HA Mode"), ("clustering", "Clustering")],
        widget=forms.RadioSelect,
        error_messages={"required": "Select HA Mode or Clustering"},
    )


class SharedAddressForm(forms.Form):
    shared_address = forms.CharField(label="Cluster Shared Address", max_length=15)
