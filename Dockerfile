# drover's container image: a static-ish release binary on a distroless base, running as non-root.
#   docker build -t drover:0.1.0 .
#   docker run --rm drover:0.1.0 --help
# Build stage: the whole toolchain, thrown away afterwards.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked --bin drover \
    && strip target/dist/drover

# Runtime stage: glibc and libgcc only (no shell, no package manager). TLS roots are compiled in
# (webpki-roots), so no CA bundle is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/drover /usr/local/bin/drover
# 65532 is distroless's "nonroot" user; the Kubernetes manifests run as the same uid.
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/drover"]
CMD ["--help"]
