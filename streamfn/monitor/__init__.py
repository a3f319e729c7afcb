"""Model monitoring on the stream: counts per window, drift against the reference, live accuracy."""

# The windows GET /monitoring and `streamfn monitor` show unless asked for another number, and
# those the console asks for (console.js's WINDOWS): half an hour of the default one-minute
# windows. One number, so that the console, the command and the JSON show the same history.
WINDOWS_SHOWN = 30
