# The ai-review image: one binary for `server`, `runner` and `admin`.
# Default command: the runner (see docker-compose.runner.yml).
#
# Multi-stage for users with a registry:
#   docker compose -f docker-compose.runner.yml build
# Hosts without a registry: Dockerfile.prebuilt makes the same image from
# a binary built on a bookworm host, on a locally made Debian base:
#   scripts/build-images.sh --ai-review ai-review:latest
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ai-review && cp target/release/ai-review /ai-review

FROM ${BASE_IMAGE}
# git clones the repositories under review; the Docker socket is mounted.
RUN command -v git >/dev/null 2>&1 || { \
      apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
      && rm -rf /var/lib/apt/lists/*; }
COPY --from=build /ai-review /usr/local/bin/ai-review
ENTRYPOINT ["/usr/local/bin/ai-review"]
CMD ["runner"]
