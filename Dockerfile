# The one Shopgraph image: `shopgraph serve <service>` runs the router or a
# subgraph, `shopgraph migrate <subgraph>` a store's migrations.
#
#   docker build -t shopgraph:dev .
#   docker build --build-arg BASE_IMAGE=local/debian:bookworm \
#                --build-arg BINARY_FROM=local/shopgraph-binary:ci -t shopgraph:ci .
#
# BASE_IMAGE is the runtime base (public Debian slim by default; CI passes
# one made locally with debootstrap, with ca-certificates, curl and tini
# baked in, since no registry is reachable there).
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG BASE_IMAGE=debian:bookworm-slim
# Where the binary comes from: `build` compiles it here; CI, which cannot
# pull a Rust image, names an image holding a binary it already built at
# /out/shopgraph (BuildKit skips the unused build stage).
ARG BINARY_FROM=build

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys (make, a C compiler, perl
# are in the Rust image; cmake and pkg-config for its dependencies, and
# OpenSSL's headers for Kafka TLS and SASL).
RUN if ! command -v cmake >/dev/null 2>&1 || ! pkg-config --exists openssl 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY . .
RUN cargo build --release --locked --bin shopgraph \
    && install -D -m 0755 target/release/shopgraph /out/shopgraph

FROM ${BINARY_FROM} AS binary

FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="shopgraph" \
      org.opencontainers.image.description="Federated GraphQL shop backend: router and product, basket, payment, notification subgraphs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/shopgraph/shopgraph"
SHELL ["/bin/sh", "-eu", "-c"]
# tini reaps children and forwards SIGTERM (graceful shutdown); curl runs
# the HEALTHCHECK; ca-certificates for JWKS over https and Kafka TLS;
# libssl3 is the OpenSSL librdkafka links for Kafka TLS and SASL.
# A base with all four baked in (CI's) skips the install.
RUN if ! command -v tini >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 \
        || ! ls /usr/lib/*/libssl.so.3 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates curl libssl3 tini \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 shopgraph \
    && useradd --system --uid 10001 --gid shopgraph --home-dir /var/lib/shopgraph --create-home --shell /usr/sbin/nologin shopgraph
COPY --from=binary /out/shopgraph /usr/local/bin/shopgraph
COPY deploy/docker/healthcheck.sh /usr/local/bin/shopgraph-healthcheck
COPY schema/supergraph.graphql /etc/shopgraph/supergraph.graphql
# The supergraph the router serves unless one is mounted over it; the
# embedded SQLite files (only without *_DATABASE_URL) go to the home
# directory, the one writable place.
ENV SUPERGRAPH_PATH=/etc/shopgraph/supergraph.graphql \
    SHOPGRAPH_DATA_DIR=/var/lib/shopgraph/data
USER 10001:10001
WORKDIR /var/lib/shopgraph
EXPOSE 4000 4001 4002 4003 4004
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/shopgraph-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/shopgraph"]
CMD ["serve", "router"]
