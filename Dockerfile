# Multi-stage build: compile in the Rust image, run on slim Debian as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p livegate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 livegate
COPY --from=build /src/target/release/livegate /usr/local/bin/livegate
USER livegate
# HTTP, then the WHIP and WHEP ICE ports (UDP).
EXPOSE 8935/tcp 7290/udp 7291/udp
ENTRYPOINT ["/usr/local/bin/livegate"]
