#!/usr/bin/env bash
# Builds the executor image from Dockerfile.executor with no registry:
#   1. a Debian base with git, made locally with debootstrap and imported
#      (cached by tag; skipped when BASE_IMAGE names an image you can pull
#      or already have),
#   2. the executor as a static binary,
#   3. `docker build` of Dockerfile.executor on top.
#
# Usage: scripts/build-images.sh [EXECUTOR_TAG]
#   BASE_IMAGE=debian:bookworm-slim scripts/build-images.sh   # with a registry
#
# With --ai-review, builds the ai-review image instead (server, runner and
# admin; Dockerfile.prebuilt on the same base) from BINARY, by default a
# release build of the `ai-review` package made here:
#   scripts/build-images.sh --ai-review [TAG] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT=executor
if [ "${1:-}" = "--ai-review" ]; then
  WHAT=ai-review
  shift
  TAG=${1:-ai-review:latest}
  BINARY=${2:-}
else
  TAG=${1:-${DOCKER_EXECUTOR_IMAGE:-ai-review-executor:latest}}
fi
LOCAL_BASE=ai-review-base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}

docker info >/dev/null 2>&1 || { echo "No Docker engine answers (docker info failed): start dockerd or set DOCKER_HOST." >&2; exit 1; }

if [ "$BASE_IMAGE" = "$LOCAL_BASE" ] && ! docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
  echo "== making $LOCAL_BASE with debootstrap (about 30-60 s, once)"
  if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  ROOTFS=$(mktemp -d /tmp/ai-review-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS"' EXIT
  debootstrap --variant=minbase --include=git,ca-certificates bookworm "$ROOTFS" http://deb.debian.org/debian >/tmp/ai-review-debootstrap.log 2>&1 \
    || { tail -20 /tmp/ai-review-debootstrap.log >&2; exit 1; }
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' - "$LOCAL_BASE" >/dev/null
fi

if [ "$WHAT" = ai-review ]; then
  if [ -z "$BINARY" ]; then
    echo "== building the ai-review binary (release)"
    cargo build --release --quiet -p ai-review
    BINARY=target/release/ai-review
  fi
  [ -x "$BINARY" ] || { echo "no ai-review binary at $BINARY" >&2; exit 1; }
  CONTEXT=$(mktemp -d /tmp/ai-review-image.XXXXXX)
  trap 'rm -rf "$CONTEXT"' EXIT
  # Debug symbols are most of a debug build; the image does not need them.
  objcopy --strip-debug "$BINARY" "$CONTEXT/ai-review" 2>/dev/null || cp "$BINARY" "$CONTEXT/ai-review"
  cp Dockerfile.prebuilt "$CONTEXT/Dockerfile"
  echo "== docker build $TAG (base $BASE_IMAGE)"
  docker build --quiet --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$TAG" "$CONTEXT" >/dev/null
  echo "built $TAG"
  exit 0
fi

echo "== building the static executor binary"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --quiet \
  --target x86_64-unknown-linux-gnu -p ai-review-executor
CONTEXT=target/executor-image
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT"
cp target/x86_64-unknown-linux-gnu/release/ai-review-executor "$CONTEXT/"
cp Dockerfile.executor "$CONTEXT/Dockerfile"

echo "== docker build $TAG (base $BASE_IMAGE)"
docker build --quiet --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$TAG" "$CONTEXT" >/dev/null
echo "built $TAG"
