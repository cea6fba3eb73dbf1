# The plinth binary in a small image, for deploy/kubernetes.
#   docker build -t plinth:latest .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p plinth

FROM debian:bookworm-slim
# git for git locations; CA certificates for https remotes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/plinth /usr/local/bin/plinth
USER 65532:65532
EXPOSE 7007
ENTRYPOINT ["plinth"]
# Reachable from outside the container: every call needs an API token
# (docker exec ... plinth token create --data-dir /var/lib/plinth ...).
CMD ["serve", "--listen", "0.0.0.0:7007", "--anonymous", "none", "--data-dir", "/var/lib/plinth"]
