# The project's image: one image for a process worker, an ECS task (prefect-aws) and a Dask
# worker. The locked dependencies (no dev or docs group) in a virtual environment at /opt/venv, the
# code at /app (read-only to the runtime user), `prefect` and `dask` on PATH, user sma (10001).
#
#   docker build -t sma .                                        # with a package index
#   docker build --build-arg BASE=internal/python311 -t sma .    # air-gapped: see below
#
# BASE: any Debian-family image with CPython 3.11 as `python3` and its venv module; the
# build and runtime stages use the same one (the venv links its interpreter). An empty BASE
# means the default (prefect.yaml passes SMA_IMAGE_BASE, empty when unset).
#
# Two ways to install the dependencies, chosen by the build context:
# - `wheels/` holds wheel files and `requirements.txt` (`uv export --frozen --no-default-groups
#   --no-emit-project`, with hashes): pip installs them with `--no-index --find-links`,
#   hashes required. Nothing is fetched, so the build runs without network (`python -m
#   benchmarks.image --wheelhouse wheels` makes such a folder on a connected machine).
# - otherwise `uv sync --frozen --no-default-groups` from the package index (uv itself from pip).
#
# LightGBM loads the OpenMP runtime libgomp.so.1, absent from minimal and slim images: the
# runtime stage keeps the base's copy and installs `libgomp1` with apt-get only when the
# base lacks it (that needs a Debian mirror; an air-gapped base must already ship it).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE:-python:3.11-slim-bookworm} AS build
# The stages' labels differ, or the legacy builder takes one's first layer for the other's.
LABEL org.opencontainers.image.title="stock-market-analytics" sma.stage="build"
# uv's version as in .make/bootstrap.py
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# `wheel[s]` matches nothing when the folder is absent: its files (if any) land in /src.
COPY pyproject.toml uv.lock wheel[s] /src/
WORKDIR /src
RUN set -eu; \
    if ls /src/*.whl >/dev/null 2>&1; then \
        test -f /src/requirements.txt || { echo "wheels/ needs requirements.txt (uv export)" >&2; exit 1; }; \
        python3 -m venv --without-pip /opt/venv; \
        python3 -m venv /tmp/pip; \
        /tmp/pip/bin/pip --python /opt/venv/bin/python install --no-index --find-links /src \
            --require-hashes --only-binary=:all: --compile -r /src/requirements.txt; \
    else \
        python3 -m venv /tmp/uv; \
        /tmp/uv/bin/pip install "uv==${UV_VERSION}"; \
        UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON=python3 UV_PYTHON_DOWNLOADS=never \
        UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 \
            /tmp/uv/bin/uv sync --frozen --no-default-groups --no-install-project; \
    fi; \
    /opt/venv/bin/python -c "import prefect, distributed, catboost"

FROM ${BASE:-python:3.11-slim-bookworm} AS runtime
LABEL org.opencontainers.image.title="stock-market-analytics"
RUN set -eu; \
    if ! ldconfig -p | grep -q 'libgomp\.so\.1'; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    echo 'sma:x:10001:10001:sma:/home/sma:/bin/sh' >> /etc/passwd; \
    echo 'sma:x:10001:' >> /etc/group; \
    mkdir -p /home/sma; \
    chown 10001:10001 /home/sma
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/sma \
    PREFECT_HOME=/home/sma/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
WORKDIR /app
# The code, listed (a new top-level package needs its line here and in .dockerignore).
COPY pyproject.toml uv.lock prefect.yaml /app/
COPY core /app/core
COPY tasks /app/tasks
COPY flows /app/flows
COPY deployments /app/deployments
COPY service /app/service
COPY data/sample /app/data/sample
# A local store and W&B's offline runs default to folders under the working directory.
RUN python -m compileall -q /app \
    && mkdir -p /app/data/store /app/wandb \
    && chown 10001:10001 /app/data/store /app/wandb \
    && python -c "import lightgbm, catboost"
USER 10001:10001
CMD ["prefect", "worker", "start", "--pool", "local"]
