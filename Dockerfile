# syntax=docker/dockerfile:1
# specman: `docker build -t specman:0.1.0 .`, then `docker run -e SPECMAN_SOURCE=HOST/REPO -p 8443:8443 specman:0.1.0`
# (data in the volume /var/lib/specman; see docs/kubernetes.md). Both stages use the same Python image, so the
# virtual environment built in the first one runs unchanged in the second (same /usr/local/bin/python3.11).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: uv resolves nothing, it installs exactly uv.lock (no dev group) into /opt/specman ---------------------
FROM ${PYTHON_IMAGE} AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/specman
WORKDIR /src
# dependencies first (a layer cached until uv.lock changes), then the project itself as a wheel (not editable)
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY src ./src
COPY examples/manifests ./examples/manifests
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable \
    && /opt/specman/bin/specman --version

# --- final: the Python runtime and the venv; no uv, no compiler, no package manager caches ---------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="specman" \
      org.opencontainers.image.description="Sync product manifests from an OCI registry and serve them over HTTPS" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 specman \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/specman --no-create-home \
       --shell /usr/sbin/nologin specman \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/specman
COPY --from=builder /opt/specman /opt/specman
COPY deploy/docker/healthcheck.py /opt/specman/healthcheck.py
ENV PATH=/opt/specman/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SPECMAN_DATA_DIR=/var/lib/specman \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /var/lib/specman
VOLUME ["/var/lib/specman"]
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/specman/bin/python", "/opt/specman/healthcheck.py"]
ENTRYPOINT ["specman"]
# the source from SPECMAN_SOURCE (HOST[:PORT]/spectro-packs/spectro-manifests/manifest), the data in SPECMAN_DATA_DIR
CMD ["serve"]
