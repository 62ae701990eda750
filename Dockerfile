# forecastscaler operator image: slim Python 3.11, CPU-only torch, non-root, no build tools.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU build of torch first, so the package's torch==2.13.0 pin is already satisfied and no
# CUDA libraries are pulled in.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY models ./models
COPY simulator ./simulator
RUN pip install . && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
LABEL org.opencontainers.image.title="forecastscaler" \
      org.opencontainers.image.description="Kubernetes predictive autoscaler operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin forecastscaler
USER 10001
ENTRYPOINT ["forecastscaler"]
CMD ["run"]
