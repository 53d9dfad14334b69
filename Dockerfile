# The tenantql API. Needs DATABASE_URL, DATABASE_OWNER_URL (for `migrate`), REDIS_URL and
# JWT_SECRET: without DATABASE_URL and REDIS_URL it would start embedded servers instead.
# GraphiQL's pinned browser assets, fetched from the npm registry at build time.
FROM node:20-slim AS graphiql
WORKDIR /graphiql
COPY graphiql/package.json graphiql/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY tenantql ./tenantql
COPY schema ./schema
COPY resolvers ./resolvers
COPY db ./db
COPY auth ./auth
RUN pip install --no-deps . && rm -rf /src
COPY --from=graphiql /graphiql/node_modules /opt/graphiql/node_modules
ENV GRAPHIQL_ASSETS_DIR=/opt/graphiql/node_modules

RUN useradd --system --create-home --home-dir /home/tenantql --shell /usr/sbin/nologin tenantql
USER tenantql
WORKDIR /home/tenantql
ENV TENANTQL_HOME=/home/tenantql/.tenantql

EXPOSE 8000
CMD ["sh", "-c", "tenantql migrate && exec tenantql serve --host 0.0.0.0 --port 8000 --workers 2"]
