# syntax=docker/dockerfile:1
# One image for the operator (`slmctl run ...`) and the gateway sidecar (`slmctl gateway ...`):
# the chart's Deployment and the rendered model pods only differ in their args.
#
# Stage 1 builds the project wheel and installs it with its dependencies into a virtualenv.
# Every dependency ships manylinux wheels for CPython 3.11, so no compiler is needed even here;
# the split still keeps pip's caches and the source tree out of the shipped image.
# constraints.txt pins every dependency and the build backend (`make lock` refreshes it), so
# two builds of the same commit install the same packages.
# Base: the official Python image, pinned to an exact patch release and Debian release.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY operator ./operator
# PIP_CONSTRAINT also reaches the isolated build environment (setuptools).
RUN PIP_CONSTRAINT=/src/constraints.txt python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/slm \
 && /opt/slm/bin/pip install --constraint /src/constraints.txt /wheels/*.whl \
 && /opt/slm/bin/slmctl --help > /dev/null

# Stage 2: the runtime. Only the virtualenv is copied; its interpreter symlink points at the
# same /usr/local/bin/python3.11 of the identical base image.
FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="slm-operator" \
      org.opencontainers.image.description="SmallLanguageModel operator and gateway sidecar (slmctl)" \
      org.opencontainers.image.source="https://github.com/slm-operator/slm-operator" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /opt/slm /opt/slm

ENV PATH=/opt/slm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed numeric non-root UID/GID (the "nonroot" id of distroless images). Kubernetes can
# only enforce runAsNonRoot for numeric users, and the chart and the rendered gateway sidecar
# set the same runAsUser.
USER 65532:65532

# Kubernetes probes the operator (kopf's /healthz) and the gateway (/healthz, /readyz) itself;
# a Docker HEALTHCHECK would have to guess which of the two roles the container plays.
HEALTHCHECK NONE

ENTRYPOINT ["slmctl"]
CMD ["--help"]
