# Test-only S3 API server for scripts/test-compose: s3rver (an npm package) on Debian's
# Node.js. The package itself is not installed here: npm needs its registry, which an
# image build may not reach, so docker/compose.test-s3.yml mounts a folder installed on
# the host (the one tests/integration/test_s3.py installs, FP_S3RVER_DIR) at /opt/s3rver.
# Build context is docker/.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs tini \
    && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 4568
ENTRYPOINT ["tini", "--"]
CMD ["node", "/opt/s3rver/node_modules/s3rver/bin/s3rver.js", "--help"]
