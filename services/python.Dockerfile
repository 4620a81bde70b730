# Both Python services (services/CONTRACT.md), one Dockerfile: SERVICE names the folder under
# services/ (python-api-pkl | python-api-onnx), MODULE the package in it that `python -m` runs
# (pkl_api | onnx_api). Build context is services/ (so the shared python-common package can be
# copied):
#   docker build -f services/python.Dockerfile --build-arg SERVICE=python-api-pkl \
#     --build-arg MODULE=pkl_api -t python-api-pkl services
# Every package comes from the service's requirements.lock and is checked against its sha256
# there (`pip --require-hashes`; pip and setuptools included); python-common is then built with
# that setuptools, offline. Offline or behind a mirror: put the lock's wheels in
# services/wheelhouse/ and they are installed from there with --no-index; without that folder,
# from PyPI (or PIP_INDEX_URL). Base image overridable for a mirror:
#   --build-arg PYTHON_IMAGE=registry.example/python:3.11-slim-bookworm
# The model is not baked in: mount the artifacts folder at /app/artifacts (read-only); the
# services' defaults (MODEL_PATH = artifacts/model.pkl or .onnx, MODEL_MANIFEST, ORT_*) are
# relative to /app.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN test -n "${SERVICE}" || { echo "missing --build-arg SERVICE=python-api-pkl|python-api-onnx" >&2; exit 1; }
RUN python -m venv /opt/venv
WORKDIR /src
# `wheelhous[e]` matches services/wheelhouse/ when it exists and nothing otherwise (a glob may
# match nothing when another source is present), so one Dockerfile serves both cases; no
# RUN --mount, so the classic builder works too.
COPY ${SERVICE}/requirements.lock wheelhous[e] ./
COPY python-common/ python-common/
RUN if ls ./*.whl >/dev/null 2>&1; then index="--no-index --find-links /src"; else index=""; fi; \
    /opt/venv/bin/pip install $index --require-hashes -r requirements.lock \
    && /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index ./python-common

FROM ${PYTHON_IMAGE}
ARG SERVICE
ARG MODULE
RUN test -n "${MODULE}" || { echo "missing --build-arg MODULE=pkl_api|onnx_api" >&2; exit 1; }
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY ${SERVICE}/${MODULE}/ ${MODULE}/
# OTEL_SEMCONV_STABILITY_OPT_IN=http: the histogram is http.server.request.duration (seconds).
# OTEL_METRICS_EXPORTER keeps the contract's default (prometheus, :9464); compose sets otlp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5000 \
    OTEL_SERVICE_NAME=${SERVICE} \
    OTEL_SEMCONV_STABILITY_OPT_IN=http \
    SERVICE_MODULE=${MODULE}
USER 10001
EXPOSE 5000 9464
# No HEALTHCHECK: a probe process would run inside the same 128 MiB / 0.5 CPU limits and
# skew what the study measures; compose polls GET /healthz from outside instead.
# `exec`: python replaces the shell and is PID 1, so SIGTERM reaches it (CMD cannot name a
# build argument itself).
CMD ["sh", "-c", "exec python -m \"$SERVICE_MODULE\""]
