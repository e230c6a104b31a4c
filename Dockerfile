# One image for every node: build, then a slim runtime with both binaries.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock diesel.toml ./
# Every workspace member must be present for cargo to read the workspace (testkit is a
# dev-dependency only: it is not built here).
COPY protocol protocol
COPY node node
COPY client client
COPY testkit testkit
COPY migrations migrations
# The web console's files are compiled into the node binary.
COPY console/app console/app
COPY config config
RUN cargo build --release --bins

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tasknode /src/target/release/taskctl /usr/local/bin/
COPY config /etc/tasknode
USER nobody
EXPOSE 7001 8001
ENTRYPOINT ["tasknode"]
CMD ["--config", "/etc/tasknode/node1.toml"]
