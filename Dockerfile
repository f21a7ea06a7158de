# syntax=docker/dockerfile:1
#
# hs2cc image: one static binary on distroless, run as non-root. fly.toml runs
# it as `hs2cc serve`, `hs2cc work` and (release_command) `hs2cc migrate`; the
# binary is on PATH and there is no ENTRYPOINT, so those commands replace CMD
# as they are. cmd/hs2cc/deploy_test.go checks the final stage.
#
#   docker build -t hs2cc .
#   docker run --rm hs2cc hs2cc help

# go.mod asks for go 1.26.8; GOTOOLCHAIN=local makes an older image fail the
# build instead of downloading a toolchain.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
WORKDIR /src

# Modules first, so that source edits reuse the downloaded modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# -tags nodev leaves out `hs2cc sandbox`, a fake CC, and `hs2cc dev` with its
# embedded MySQL, whose ICU regexp package compiles WebAssembly at init:
# about 60 MB of RSS and 250 ms at the start of every process that links it.
# TestProductionBuildDeps checks what the binary links.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -tags nodev -ldflags "-s -w" -o /out/hs2cc ./cmd/hs2cc \
 && /out/hs2cc help >/dev/null

# Amazon RDS signs its server certificates with its own CAs, which are not in
# the public trust store, so `tls=true` in HS2CC_MYSQL_DSN needs them. Go reads
# every file in /etc/ssl/certs besides ca-certificates.crt, so the bundle is
# dropped there. Build with --build-arg RDS_CA_BUNDLE_URL= to leave it out.
ARG RDS_CA_BUNDLE_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
RUN if [ -n "$RDS_CA_BUNDLE_URL" ]; then \
      curl -fsSL --retry 3 -o /out/rds-ca-bundle.pem "$RDS_CA_BUNDLE_URL" \
      && grep -q "BEGIN CERTIFICATE" /out/rds-ca-bundle.pem; \
    else \
      : > /out/rds-ca-bundle.pem; \
    fi \
 && chmod 0644 /out/rds-ca-bundle.pem

# static-debian12: CA certificates, tzdata and /etc/passwd, no shell, no libc
# (the binary needs none). :nonroot already runs as nonroot (65532); USER says
# so by number, which needs no /etc/passwd look-up by whatever starts it.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rds-ca-bundle.pem /etc/ssl/certs/rds-ca-bundle.pem
COPY --from=build /out/hs2cc /usr/local/bin/hs2cc
USER 65532:65532
EXPOSE 8080
CMD ["hs2cc", "serve"]
