# syntax=docker/dockerfile:1
# The molt operator image: `docker build -t molt .` (see docs/container.md).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer, so an edit to molt's sources does not
# rebuild them. Cargo needs every workspace member's manifest to resolve the
# workspace; e2e's sources are not needed to build molt. The stub main.rs gives
# the root package a target until the real sources are copied in.
COPY Cargo.toml Cargo.lock ./
COPY e2e/Cargo.toml e2e/
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --locked --release -p molt \
    && rm -rf src

COPY src src
# touch: the copied files may be older than the stubs, and cargo compares mtimes.
RUN touch src/main.rs src/lib.rs \
    && cargo build --locked --release -p molt \
    && cp target/release/molt /molt

# cc: glibc and libgcc for the dynamically linked binary, CA certificates, and
# nothing else — no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="molt" \
      org.opencontainers.image.description="Rolls node OS-image updates through a Kubernetes cluster, gated on workload health, with automatic rollback" \
      org.opencontainers.image.source="https://github.com/molt-dev/molt" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /molt /molt
# The distroless "nonroot" user; numeric so runAsNonRoot can verify it.
USER 65532:65532
# Metrics and health probes.
EXPOSE 8080
ENTRYPOINT ["/molt"]
CMD ["run"]
