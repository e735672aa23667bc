# livegate's container image: `docker build -t livegate .` (or `docker compose up`, which
# builds it). Two stages: the release binary is compiled in the Rust image, and runs on slim
# Debian as a non-root user with ffmpeg, so the example exec worker
# (LIVE_AI_PIPELINE=exec:/opt/livegate/workers/ffmpeg-filter.sh) works in the container.
# Checked by scripts/validate-deploy.sh (files, ports); no Docker engine is needed for that.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crates.io downloads and the compiled dependencies between builds
# (BuildKit, the default builder); the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p livegate \
    && install -m 0755 target/release/livegate /usr/local/bin/livegate

FROM debian:bookworm-slim
# ffmpeg: the example exec worker; ca-certificates: https webhooks and remote pipelines.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /opt/livegate --shell /usr/sbin/nologin livegate
COPY --from=build /usr/local/bin/livegate /usr/local/bin/livegate
# The example workers keep their executable bit from git (100755).
COPY examples/workers/ /opt/livegate/workers/
WORKDIR /opt/livegate
USER 10001:10001
# HTTP (WHIP, WHEP, /healthz, /readyz, /metrics), then the WHIP and WHEP ICE ports (UDP).
EXPOSE 8935/tcp 7290/udp 7291/udp
ENTRYPOINT ["/usr/local/bin/livegate"]
