# Builds the `cadastre` binary. Used by docker-compose.yml; services are subcommands of it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cadastre

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cadastre /usr/local/bin/cadastre
COPY examples /opt/cadastre/examples
COPY deploy/config /opt/cadastre/config
USER 65532:65532
ENTRYPOINT ["cadastre"]
