"""Form helpers every page shares: a whole number within the seed's range, refused with the range in words."""

from django import forms

RANGE_MESSAGE = "{label}: enter a whole number from {low} to {high} (Valid Values: {low}-{high})"


def ranged(label, low=None, high=None):
    """A whole-number field; ``label`` may be a range of nodes.agent.formats (label, low and high in one)."""
    if low is None:
        label, low, high = label.label, label.low, label.high
    message = RANGE_MESSAGE.format(label=label, low=low, high=high)
    return forms.IntegerField(
        label=label,
        min_value=low,
        max_value=high,
        error_messages={"invalid": message, "min_value": message, "max_value": message, "required": message},
    )
