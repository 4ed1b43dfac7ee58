FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# No default features: the production image carries no demo generator and no benchmarks.
RUN cargo build --release --locked --no-default-features --bin stridelog

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/stridelog stridelog
COPY --from=build /src/target/release/stridelog /usr/local/bin/stridelog
USER stridelog
WORKDIR /var/lib/stridelog
ENTRYPOINT ["stridelog"]
CMD ["serve"]
