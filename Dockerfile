# Production image of the bot: `docker compose up` (see docker-compose.yml and docs/operations.md).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*

# The bot runs as an unprivileged user; /data (call audio, the prompt cache) is its only
# writable place: a named volume mounted there starts with this ownership and mode.
RUN useradd --create-home --uid 10001 bot \
 && mkdir -p /data/media /data/speech-cache \
 && chown -R bot:bot /data \
 && chmod 0700 /data/media
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
RUN pip install --no-cache-dir .

USER bot:bot
ENV BOT_TEMPLATES_DIR=/app/templates \
    BOT_MEDIA_DIR=/data/media \
    BOT_SPEECH_CACHE_DIR=/data/speech-cache
# `bot run` serves the webhooks and the console on every interface of the container (port 8000)
ENV BOT_WEB_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["bot"]
CMD ["run"]
