# The streamfn command's image: ingest, pollers, producer, trainer, the bucket job and the MLflow
# server under docker compose. Build from the repository root: docker build -t streamfn .
# Pinned by digest (Python 3.11.16, built 2026-08-25: docker-library/repo-info's record of the tag);
# the tag alone moves with every rebuild. docs/security.md says how to move it.
FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

# LightGBM's wheel links the system OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
COPY streamfn ./streamfn
COPY data ./data
# Editable, so that `streamfn train` finds data/ beside the package, as in a checkout. The
# constraints are the versions the tests ran with.
RUN pip install --no-cache-dir -c constraints.txt -e ".[cli]"

# Not root; /mlflow is where the MLflow service keeps its SQLite store (a volume).
RUN useradd --create-home --uid 10001 streamfn && mkdir /mlflow && chown streamfn /mlflow
USER streamfn
ENV MPLCONFIGDIR=/tmp/matplotlib

EXPOSE 8800
# Checks the default command, ingest. Compose runs other commands from this image: each service
# there states its own check, or turns this one off.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8800/health', timeout=2)"]
CMD ["streamfn", "ingest", "--host", "0.0.0.0", "--port", "8800"]
