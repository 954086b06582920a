# syntax=docker/dockerfile:1
# tickgate image: Node.js 20 on Debian 12 (bookworm), whose glibc matches the
# native uWebSockets.js binary.
#
#   docker build -t tickgate \
#     --build-arg VERSION="$(node -p 'require("./package.json").version')" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE=https://example.com/your/tickgate .
#
# Multi-arch (linux/amd64 and linux/arm64): docker buildx build --platform
# linux/amd64,linux/arm64 ... ; each platform's image keeps only its own
# uWebSockets.js binary.

FROM node:20-bookworm-slim AS build
# Set by BuildKit to the architecture being built (amd64, arm64).
ARG TARGETARCH
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY dashboard ./dashboard
COPY scripts/build-dashboard.mjs ./scripts/build-dashboard.mjs
RUN npm run build && npm prune --omit=dev
# uWebSockets.js ships a native binary for every platform and Node ABI
# (113 MB). Keep the one this image loads: linux, the target architecture,
# this Node's ABI (115 for Node 20); the pure-JS fallback in dist/*.js stays,
# the stray binaries beside it go. Fails the build if the binary is missing.
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) arch=x64 ;; \
      arm64) arch=arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}: the image is built for amd64 and arm64" >&2; exit 1 ;; \
    esac; \
    abi="$(node -p process.versions.modules)"; \
    keep="uws_linux_${arch}_${abi}.node"; \
    uws=node_modules/uWebSockets.js; \
    test -f "$uws/binaries/$keep"; \
    find "$uws/binaries" -name '*.node' ! -name "$keep" -delete; \
    find "$uws/dist" -name '*.node' -delete; \
    rm -rf "$uws/docs"; \
    ls "$uws/binaries"

FROM node:20-bookworm-slim
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="tickgate" \
      org.opencontainers.image.description="Real-time market-data gateway: NATS ticks in, MessagePack snapshots and deltas out over WebSocket" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Listen on all interfaces inside the container. The port comes from the
# config (default 8080); an environment variable would override a mounted file.
ENV NODE_ENV=production \
    TICKGATE_HOST=0.0.0.0
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/dashboard ./dist/dashboard
COPY --from=build /app/dist/client ./dist/client
COPY config ./config
# The image's node user, by number so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# Loads the configuration the way the gateway does (--config of PID 1's
# command line, TICKGATE_CONFIG, TICKGATE_* variables) and asks /healthz on
# metrics.port, or on port when that is null. Liveness, not /readyz: a NATS
# outage makes every replica not ready at once (and a drain its own replica),
# and Swarm or autoheal would restart the unhealthy containers, which brings
# back no feed and cuts every client off. Kubernetes ignores this and uses
# the chart's probes (there, not ready only takes a pod out of the Service).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s \
  CMD ["node", "dist/src/cli.js", "healthcheck", "--pid", "1", "--path", "/healthz", "--timeout", "3000"]
# tini is PID 1 and forwards signals; Node runs directly (npm would not pass SIGTERM on).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
