"""Form helpers every page shares: a whole number within the seed's range, refused with the range in words."""

from django import forms

RANGE_MESSAGE = "{label}: enter a whole number from {low} to {high} (Valid Values: {low}-{high})"


def ranged(label, low, high):
    message = RANGE_MESSAGE.format(label=label, low=low, high=high)
    return forms.IntegerField(
        label=label,
        min_value=low,
        max_value=high,
        error_messages={"invalid": message, "min_value": message, "max_value": message, "required": message},
    )
