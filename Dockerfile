# syntax=docker/dockerfile:1
# specman: `docker build -t specman:0.1.0 .`, then `docker run -e SPECMAN_SOURCE=HOST/REPO -p 8443:8443 specman:0.1.0`
# (data in the volume /var/lib/specman; see docs/kubernetes.md). Without Docker or any image registry:
# `scripts/build-image` builds this file with podman on a debootstrapped Debian base, from a wheelhouse, offline.
#
# Build arguments (the defaults build with Docker from Docker Hub and PyPI):
#   PYTHON_IMAGE   the runtime base: Python 3.11 on Debian bookworm (python3.11 on PATH, groupadd/useradd)
#   BUILDER_IMAGE  the build stage's base: the same Python at the same path (the venv moves between the stages
#                  unchanged), ideally with binutils; default PYTHON_IMAGE (binutils then comes from apt)
#   UV_IMAGE       an image holding the uv binary at /uv
#   WHEELS, DIST   context directories: a wheelhouse (requirements.txt with hashes + the wheels) and the project's
#                  wheel. Without them (the default, deploy/docker, holds neither) uv installs uv.lock from the index.
#   VERSION, REVISION, CREATED, SOURCE   the OCI labels
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BUILDER_IMAGE=${PYTHON_IMAGE}
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13

FROM ${UV_IMAGE} AS uv

# --- builder: uv resolves nothing, it installs exactly uv.lock (no dev group) into /opt/specman ---------------------
FROM ${BUILDER_IMAGE} AS builder
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/specman
WORKDIR /src
ARG WHEELS=deploy/docker
ARG DIST=deploy/docker
# dependencies first (a layer cached until uv.lock or the wheelhouse changes), then the project itself (not editable)
COPY pyproject.toml uv.lock ./
COPY ${WHEELS}/ /wheels/
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ -f /wheels/requirements.txt ]; then \
        uv venv --quiet /opt/specman \
        && uv pip install --quiet --python /opt/specman/bin/python --offline --no-index --find-links /wheels \
           --require-hashes -r /wheels/requirements.txt; \
    else \
        uv sync --locked --no-dev --no-install-project; \
    fi
COPY README.md ./
COPY src ./src
COPY examples/manifests ./examples/manifests
COPY ${DIST}/ /dist/
RUN --mount=type=cache,target=/root/.cache/uv \
    if ls /dist/specman-*.whl >/dev/null 2>&1; then \
        uv pip install --quiet --python /opt/specman/bin/python --offline --no-index --no-deps /dist/specman-*.whl; \
    else \
        uv sync --locked --no-dev --no-editable; \
    fi \
    && /opt/specman/bin/specman --version
# the extension modules without their debug info and symbol tables (zstandard's ship ~20 MB of DWARF)
RUN if ! command -v strip >/dev/null; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null; \
    fi \
    && find /opt/specman -name '*.so' -type f -exec strip --strip-unneeded {} + \
    && /opt/specman/bin/python -c "import zstandard, cryptography.hazmat.bindings._rust, granian._granian, isal.isal_zlib"

# --- final: the Python runtime and the venv; no uv, no compiler, no package manager caches ---------------------------
FROM ${PYTHON_IMAGE}
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
# ready = a complete generation is served (`specman serve`: /_specman/readyz; `specman console`: /healthz); a first sync on an
# empty volume can take minutes, hence the long start period (a success ends it at once)
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["/opt/specman/bin/python", "/opt/specman/healthcheck.py"]
ENTRYPOINT ["specman"]
# the source from SPECMAN_SOURCE (HOST[:PORT]/spectro-packs/spectro-manifests/manifest), the data in SPECMAN_DATA_DIR
CMD ["serve"]
# labels last: a new revision changes only this metadata, never a cached layer above
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="specman" \
      org.opencontainers.image.description="Sync product manifests from an OCI registry and serve them over HTTPS" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
