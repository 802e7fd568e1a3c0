# syntax=docker/dockerfile:1.7
# The Airflow image: the official apache/airflow image plus this provider, pinned by uv.lock.
#
#   docker build -f deploy/docker/airflow.Dockerfile -t airflow-mlops-airflow:3.3.2-mlops-0.1.0 .
#
# The lock is exported as pip constraints, so the provider and its dependencies (MLflow, whylogs,
# BentoML, the Kubernetes provider) are the versions the test suite ran with. Runs as the image's
# non-root `airflow` user (uid 50000), as the official Helm chart expects.

ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY airflow_mlops_provider ./airflow_mlops_provider
# Runtime pins only (no dev group); apache-airflow itself is left to the base image's pin.
RUN uv export --frozen --no-hashes --no-emit-project --no-dev --format requirements-txt \
    | grep -v '^apache-airflow==' > /out-constraints.txt \
 && mkdir -p /out && mv /out-constraints.txt /out/constraints.txt \
 && uv build --wheel --out-dir /out

FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
COPY --from=build /out /tmp/build
USER airflow
# `apache-airflow==$AIRFLOW_VERSION` keeps pip from moving the base image's Airflow.
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -c /tmp/build/constraints.txt \
        /tmp/build/airflow_mlops_provider-*.whl
ENV WHYLOGS_NO_ANALYTICS=True \
    BENTOML_DO_NOT_TRACK=True
# The provider must be discoverable by Airflow, or the image is useless.
RUN airflow providers list --output plain | grep -q airflow-mlops-provider
