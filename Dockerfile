# The prediction service's image: `mlops serve` for one deployment target, run exactly as on a
# machine (pipeline/deploy/entrypoint.py), from a read-only root filesystem as a fixed non-root
# user. .github/workflows/image.yml builds it on every release; README "Container image".
#
#   docker build --build-arg TARGET=local --build-arg BUNDLE=fetch -t mlops-service .
#
# Build arguments:
#   BUNDLE          fetch (default): the image holds the release record and the bundle's DVC
#                   pointer; at start the bundle is pulled from the DVC remote into the bundle
#                   cache volume and verified against the record's digest (refused on mismatch).
#                   baked: the released bundle (bundles/<id>/, present in the build context: the
#                   image workflow pulls and verifies it as fetch mode does) is copied in and
#                   verified at start; no DVC remote is needed at run time.
#   TARGET          the deployment target served (deploy/<TARGET>.json); default local
#   DVC_REMOTE_TYPE s3 | gs | azure | ssh: the DVC plugin fetch mode needs for the remote
#                   (requirements/remote-<type>.lock); empty: local paths and http(s) only
#   PYTHON_IMAGE    the base image, pinned by digest: python:3.11-slim-bookworm's multi-platform
#                   index (the digest used by several public repositories' Dockerfiles, e.g. as
#                   python:3.11.16-slim-bookworm; re-check with
#                   `docker buildx imagetools inspect python:3.11-slim-bookworm`)
#   REVISION, VERSION, CREATED  OCI labels (the workflow passes the commit, release and time)
#
# Run it read-only; the writable paths are the declared volumes (a tmpfs each, or emptyDir):
#   docker run --read-only --tmpfs /tmp --tmpfs /app/logs --tmpfs /app/bundles \
#     --tmpfs /app/.dvc/cache --tmpfs /app/.dvc/tmp -p 8000:8000 mlops-service   # fetch
#   docker run --read-only --tmpfs /tmp --tmpfs /app/logs -p 8000:8000 mlops-service  # baked
# Fetch mode reads the DVC remote from the project's .dvc/config, or from a DVC config file
# mounted in $DVC_GLOBAL_CONFIG_DIR (/etc/mlops/dvc-remote/config: a Kubernetes secret, with
# the remote's credentials).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
ARG BUNDLE=fetch

# ---------------------------------------------------------------------------------- build
# Installs the lock file and the project into a venv. Nothing is compiled (every pinned
# package has a wheel for CPython 3.11 on manylinux but antlr4-python3-runtime, pure Python,
# built from its sdist here), and nothing of this stage but the venv reaches the image.
FROM ${PYTHON_IMAGE} AS build
ARG DVC_REMOTE_TYPE=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src
RUN python -m venv /opt/venv
# The lock has no hashes (run.lock is a dependency of every training stage: adding them would
# re-train); --no-deps installs exactly its pins and nothing it does not list, and the one sdist
# is built with the lock's own setuptools (installed first), not one fetched for the build.
COPY requirements/run.lock requirements/remote-*.lock requirements/
RUN grep '^setuptools==' requirements/run.lock > /tmp/setuptools.txt \
    && /opt/venv/bin/pip install --no-deps -r /tmp/setuptools.txt \
    && /opt/venv/bin/pip install --no-deps --no-build-isolation -r requirements/run.lock \
    && if [ -n "${DVC_REMOTE_TYPE}" ]; then \
         /opt/venv/bin/pip install --no-deps --no-build-isolation \
           -r "requirements/remote-${DVC_REMOTE_TYPE}.lock"; \
       fi
COPY pyproject.toml README.md ./
COPY pipeline/ pipeline/
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
    && /opt/venv/bin/pip uninstall --yes pip

# -------------------------------------------------------------------------------- runtime
# The venv and the project's small files only: no compilers, no pip, no caches.
FROM ${PYTHON_IMAGE} AS runtime
ARG TARGET=local
ARG REVISION=unknown
ARG VERSION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="gitops-mlops service" \
      org.opencontainers.image.description="mlops serve: the prediction service of one deployment target" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      io.gitops-mlops.target="${TARGET}"
# A fixed, unprivileged user (a passwd entry: DVC asks for the user's name); the base image's
# pip, setuptools and wheel go: nothing installs packages at run time.
RUN groupadd --system --gid 10001 mlops \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin mlops \
    && python -m pip uninstall --yes --no-cache-dir pip setuptools wheel
COPY --from=build /opt/venv /opt/venv
COPY docker/dvc-system.config /etc/mlops/dvc/config
WORKDIR /app
# What `mlops serve` reads: the composed params, conf/ (the project root is found by it), the
# release records; .dvc/config for fetch mode. Owned by root, read-only to the service.
COPY conf/ conf/
COPY params.yaml ./
COPY deploy/*.json deploy/
COPY .dvc/config .dvc/config
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DVC_NO_ANALYTICS=1 \
    DVC_SYSTEM_CONFIG_DIR=/etc/mlops/dvc \
    DVC_GLOBAL_CONFIG_DIR=/etc/mlops/dvc-remote \
    DVC_SITE_CACHE_DIR=/tmp/dvc \
    MLOPS_TARGET=${TARGET} \
    MLOPS_HOST=0.0.0.0 \
    MLOPS_PORT=8000
EXPOSE 8000
# For `docker run`; Kubernetes ignores it and probes /health itself (the rendered manifests).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['MLOPS_PORT'] + '/health', timeout=4)"]

# ---------------------------------------------------------------------- bundle=fetch
FROM runtime AS bundle-fetch
# The release's DVC pointers, read-only: bundles/ is the bundle cache volume, which hides
# what the image holds there, so the entrypoint restores a missing pointer from this copy.
COPY bundles/*.dvc /opt/mlops/pointers/
RUN mkdir -p /app/bundles /app/.dvc/cache /app/.dvc/tmp /app/logs \
    && chown 10001:10001 /app/bundles /app/.dvc/cache /app/.dvc/tmp /app/logs
VOLUME ["/app/bundles", "/app/.dvc/cache", "/app/.dvc/tmp", "/app/logs", "/tmp"]
USER 10001:10001
ENTRYPOINT ["mlops", "serve", "--bundle", "fetch", "--pointers", "/opt/mlops/pointers"]

# ---------------------------------------------------------------------- bundle=baked
FROM runtime AS bundle-baked
# Every bundle in the build context: the workflow pulls exactly the target's declared ones.
COPY bundles/ bundles/
RUN mkdir -p /app/logs && chown 10001:10001 /app/logs
VOLUME ["/app/logs", "/tmp"]
USER 10001:10001
ENTRYPOINT ["mlops", "serve", "--bundle", "baked"]

# ------------------------------------------------------------------------------- final
# bundle-${BUNDLE} names one of this file's stages, which hadolint cannot resolve: DL3006 (tag
# the image) does not apply, and DL3049 (labels) holds through `runtime`, which it inherits.
# hadolint ignore=DL3006,DL3049
FROM bundle-${BUNDLE} AS final
