# One image for both roles: `npm run worker` and `npm run api` (see docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# Bundle workflow code once at build time; workers then start without webpack.
RUN mkdir -p dist && npx tsx scripts/bundle-workflows.ts dist/workflow-bundle.js
# No HOST here: the worker role needs none, and an API bound beyond loopback needs API_TOKEN too,
# so the API's HOST=0.0.0.0 is set where it runs (docker-compose.yml) together with the token.
ENV WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js LOG_FORMAT=json
USER node
CMD ["npm", "run", "worker"]
