# syntax=docker/dockerfile:1
# One Switchboard replica. docker-compose.yml builds it for the demo; on its own:
#   docker build -t switchboard . && docker run -p 3000:3000 switchboard
# The code runs on Node 20.6+; the image uses the current LTS line, pinned to one release so a
# rebuild gets the same base (bump it on purpose, e.g. for a security release).
ARG NODE_IMAGE=node:24.20.0-trixie-slim

# 1. Compile the TypeScript (needs the dev dependencies).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The server alone: `npm run build` also builds the workspaces (packages/*), which the image has no use for.
RUN npx tsc -p tsconfig.json

# 2. Production dependencies only, installed apart so no compiler or test tool reaches the image.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# 3. The runtime: compiled code, production dependencies, and the files read at boot.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production PORT=3000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
COPY public ./public
# The files stay owned by root: the replica writes nothing to disk, so it cannot change its code.
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# What `npm start` runs, without npm in between: SIGTERM reaches node, which drains its streams.
# telemetry/start.js loads OpenTelemetry only when OTEL_* exporter variables are set.
CMD ["node", "--import", "./dist/telemetry/start.js", "dist/main.js"]
