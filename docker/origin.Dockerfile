# Test-only HTTP origin for scripts/test-compose: tests/origin.py served on the compose
# network. Build context is the repository root (it needs tests/origin.py).
FROM debian:bookworm-slim
# Same first layer as the client stage of ../Dockerfile, so the two share it in the cache.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 tini \
    && rm -rf /var/lib/apt/lists/*
COPY tests/origin.py /opt/origin/
USER nobody
EXPOSE 8080
ENTRYPOINT ["tini", "--"]
CMD ["python3", "/opt/origin/origin.py", "--host", "0.0.0.0", "--port", "8080"]
