# The streamfn CLI image (ingest, poller, producer, trainer under docker compose).
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamfn ./streamfn
COPY data ./data
# Editable, so the package finds data/ beside it as it does in a checkout.
RUN pip install --no-cache-dir -e .
EXPOSE 8800
CMD ["streamfn", "ingest", "--host", "0.0.0.0", "--port", "8800"]
