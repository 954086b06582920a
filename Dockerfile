# syntax=docker/dockerfile:1
# tickgate image: Node.js 20 on Debian 12 (bookworm), whose glibc matches the
# native uWebSockets.js binary.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY dashboard ./dashboard
COPY scripts/build-dashboard.mjs ./scripts/build-dashboard.mjs
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
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
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.TICKGATE_METRICS_PORT || process.env.TICKGATE_PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# tini is PID 1 and forwards signals; Node runs directly (npm would not pass SIGTERM on).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
