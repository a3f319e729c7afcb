"""Run the zip functions that `sam build` made, with nothing but their own files.

    python -m tests.descriptors.zip_smoke .aws-sam/build-ingest/IngestFunction ...

Each artifact directory is named after its function in template.yaml. Its handler is imported
and invoked in a fresh interpreter whose only path is the artifact (no site-packages), so a
missing dependency or file fails here as it would on Lambda. The numerical stack must be absent:
the zip functions stay small.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
HEAVY = ("numpy", "pandas", "sklearn", "mlflow", "boto3", "lightgbm")
DEAD = "127.0.0.1:9"  # discard port: nothing answers there

# What each function is asked to do: the answer must show it ran its whole path.
CHECKS = {
    "IngestFunction": f"""
import base64, json
event = {{"version": "2.0", "routeKey": "$default", "rawPath": "/health", "rawQueryString": "",
         "headers": {{"host": "api.example.com"}}, "isBase64Encoded": False,
         "requestContext": {{"http": {{"method": "GET", "path": "/health", "protocol": "HTTP/1.1",
         "sourceIp": "203.0.113.7", "userAgent": "smoke"}}, "stage": "$default",
         "requestId": "r", "routeKey": "$default", "accountId": "1", "apiId": "a",
         "domainName": "api.example.com", "time": "", "timeEpoch": 0}}}}
answer = handler(event, None)
assert answer["statusCode"] == 503, answer  # Redis at {DEAD} is down: a clean 503, not a crash
assert answer["headers"]["retry-after"] == "1", answer
print("health answered 503 with Retry-After, as it should with Redis down")
""",
    "ProduceFunction": """
class Context:
    def get_remaining_time_in_millis(self):
        return 6000
answer = handler({"count": 4, "batch": 2, "seed": 1}, Context())
assert (answer["sent"], answer["undelivered"]) == (4, 4), answer  # the ingest URL is dead
print("produced and accounted for", answer["sent"], "records")
""",
}


def handler_of(function: str) -> tuple[str, str]:
    """(module, attribute) of a zip function's Handler in template.yaml."""
    template = yaml.load(TEMPLATE.read_text(), Loader=yaml.BaseLoader)  # no CloudFormation tags
    handler = template["Resources"][function]["Properties"]["Handler"]
    path, _, name = handler.rpartition(".")
    return path.replace("/", "."), name


def smoke(artifact: Path) -> None:
    """Import and invoke one artifact's handler in an interpreter that sees only the artifact."""
    function = artifact.name
    heavy = [name for name in HEAVY if (artifact / name).exists()]
    if heavy:
        raise SystemExit(f"{function}: the zip holds {', '.join(heavy)}")
    module, name = handler_of(function)
    code = f"from {module} import {name} as handler\n" + CHECKS[function]
    env = {"PYTHONPATH": str(artifact), "REDIS_URL": f"redis://{DEAD}/0", "INGEST_AUTH": "none",
           "INGEST_URL": f"http://{DEAD}", "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"{function} failed:\n{done.stdout}{done.stderr[-3000:]}")
    size = sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file()) / 2**20
    print(f"{function}: {done.stdout.strip().splitlines()[-1]} ({size:.0f} MB unzipped)")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        smoke(Path(path))
