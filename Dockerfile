# Production image of the bot: `docker compose up` (see docker-compose.yml and docs/operations.md).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 bot
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
RUN pip install --no-cache-dir .

USER bot
ENV BOT_TEMPLATES_DIR=/app/templates
# `bot run` serves the webhooks and the console on every interface of the container (port 8000)
ENV BOT_WEB_HOST=0.0.0.0
EXPOSE 8000
ENTRYPOINT ["bot"]
CMD ["run"]
