# Builds the `cadastre` binary. Used by docker-compose.yml and deploy/kubernetes/; services are
# subcommands of it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cadastre

FROM debian:bookworm-slim
# git: the harvester mirrors repositories with it. curl: docker-compose.yml's healthchecks ask
# each service's admin port for /ready (Kubernetes probes need nothing in the image).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cadastre /usr/local/bin/cadastre
COPY examples /opt/cadastre/examples
COPY deploy/config /opt/cadastre/config
# The harvester's cache (harvester.cache_dir): a named volume mounted here starts with this
# owner, so the unprivileged user can write it.
RUN mkdir -p /var/cache/cadastre && chown 65532:65532 /var/cache/cadastre
USER 65532:65532
ENTRYPOINT ["cadastre"]
