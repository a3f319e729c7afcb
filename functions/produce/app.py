"""Producer function: synthetic records sent to INGEST_URL; answers what was accepted."""

import asyncio
from typing import Any

from streamfn.core import logs
from streamfn.core.environment import get_settings
from streamfn.data import producer
from streamfn.data.plan import plan_from_event

logs.configure("streamfn-produce")
settings = get_settings()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Send the event's plan (count, rate, models, batch, seed; a schedule sends 100 records)."""
    plan = plan_from_event(event or {})
    time_left_s = context.get_remaining_time_in_millis() / 1000 if context else None
    tally = asyncio.run(producer.produce(settings, plan, time_left_s))
    return tally.as_dict()
