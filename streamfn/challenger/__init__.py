"""The challenger's way to champion: evidence from live traffic (the shadow rows' windows) and
from the bucket (backtests), then a gated promotion that can be rolled back."""
