# syntax=docker/dockerfile:1.7
# The trainer image: `python -m airflow_mlops_provider.training` and what it needs, nothing of Airflow.
#
#   docker build -f deploy/docker/trainer.Dockerfile -t airflow-mlops-trainer:0.1.0 .
#   docker build -f deploy/docker/trainer.Dockerfile --build-arg VARIANT=cuda -t airflow-mlops-trainer:0.1.0-cuda .
#
# Versions come from uv.lock: the lock is exported as pip constraints and every package is installed
# under them, so the image trains with the versions the tests ran with.

ARG VARIANT=cpu
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- constraints and the provider wheel, from the repository ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY airflow_mlops_provider ./airflow_mlops_provider
# --all-groups --all-extras: the pins of xgboost (CUDA, `gpu` extra) and xgboost-cpu (dev) too.
RUN mkdir -p /out \
 && uv export --frozen --no-hashes --no-emit-project --all-extras --all-groups \
        --format requirements-txt -o /out/constraints.txt \
 && uv build --wheel --out-dir /out

# ---- the two bases: a slim Python, or CUDA's runtime with a uv-managed Python ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS base-cpu
ENV XGBOOST_DIST=xgboost-cpu
COPY --from=uv /uv /usr/local/bin/uv
RUN uv venv --python /usr/local/bin/python /opt/venv

FROM ${CUDA_IMAGE} AS base-cuda
ARG PYTHON_VERSION
ENV XGBOOST_DIST=xgboost \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=uv /uv /usr/local/bin/uv
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && uv python install ${PYTHON_VERSION} \
 && uv venv --python ${PYTHON_VERSION} /opt/venv \
 && chmod -R a+rX /opt/python

# ---- the image ----
FROM base-${VARIANT} AS trainer
ARG VARIANT
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp \
    HOME=/home/trainer
COPY --from=build /out /tmp/build
# The runner's own dependencies, pinned by the lock; the provider itself without its dependencies
# (Airflow, BentoML and whylogs have no business in a training pod).
RUN uv pip install --python /opt/venv/bin/python --no-cache -c /tmp/build/constraints.txt \
        mlflow scikit-learn pandas pyarrow numpy skops "${XGBOOST_DIST}" \
 && uv pip install --python /opt/venv/bin/python --no-cache --no-deps /tmp/build/*.whl \
 && rm -rf /tmp/build \
 && python -c "import airflow_mlops_provider.training.runner, sys; assert 'airflow' not in sys.modules"
# The uid matches MLflowTrainingOperator's default securityContext (runAsUser 10001).
RUN groupadd --system --gid 10001 trainer \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/trainer --create-home trainer
USER 10001:10001
WORKDIR /home/trainer
LABEL org.opencontainers.image.title="airflow-mlops-trainer" \
      org.opencontainers.image.description="Training runner of airflow-mlops-provider (${VARIANT})"
ENTRYPOINT ["python", "-m", "airflow_mlops_provider.training"]
