# Prometheus for the fetchpool compose stack (profile "metrics"): Debian's package, with a
# scrape config for the master's /metrics. Built from debian:bookworm-slim like the others.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
COPY prometheus.yml /etc/prometheus/fetchpool.yml
USER prometheus
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/fetchpool.yml", \
            "--storage.tsdb.path=/prometheus", "--web.listen-address=0.0.0.0:9090"]
