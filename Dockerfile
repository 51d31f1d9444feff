# syntax=docker/dockerfile:1
# Multi-stage: dependencies are built into a venv in their own layer, the runtime image holds
# only that venv and runs as a non-root user. The install steps are the README's (pip into a
# venv from pyproject.toml), so the tested path is the shipped path.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first: this layer is reused until pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir gateway && touch gateway/__init__.py \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall -y seat-balance-gateway
COPY gateway ./gateway
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# Configuration comes from the environment (see the README's configuration table).
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
