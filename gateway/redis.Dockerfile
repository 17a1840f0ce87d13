# The gateway's clock memory (CHRONOTICK_GATEWAY_CLOCK_STORE_URL): Debian bookworm's redis-server.
# Build context: gateway/ (docker-compose.yml sets it; nothing is copied in, so not the whole
# repository and its wheelhouse). BASE_IMAGE is the other images' base (scripts/docker-provision
# builds a local one where no registry is reachable); the package comes from Debian's mirror.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE}
# The package creates the redis user; /data is where the append-only file goes (a volume in compose,
# which takes this folder's owner when it is first created).
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["redis-cli", "ping"]
# No password and protected mode off: the server is reachable only on compose's internal backend
# network. Every clock key has a TTL (the idle expiry), so volatile-lru may evict any of them when
# maxmemory is reached; the append-only file keeps the clocks across a restart.
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--appendonly", "yes", "--dir", "/data", \
     "--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru"]
