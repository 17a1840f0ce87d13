# Prometheus for the fleet's `monitoring` profile: Debian bookworm's prometheus package (promtool
# included), with the project's scrape configuration and alert rules baked in.
# Build context: monitoring/ (docker-compose.yml sets it). BASE_IMAGE is the other images' base
# (scripts/docker-provision builds a local one where no registry is reachable); the package comes
# from Debian's mirror, as redis-server does.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE}
# The package creates the prometheus user; /prometheus holds the time series (a volume in compose,
# which takes this folder's owner when it is first created).
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus/agents \
 && chown prometheus:prometheus /prometheus
COPY prometheus.yml alerts.yml /etc/prometheus/
# No agent by default; an operator mounts a file listing theirs here (see agents.example.yml).
COPY agents.example.yml /etc/prometheus/agents.example.yml
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
  CMD ["promtool", "check", "healthy", "--url", "http://127.0.0.1:9090"]
CMD ["prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--storage.tsdb.retention.time=15d", "--web.listen-address=0.0.0.0:9090"]
