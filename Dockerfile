# hegate on Debian bookworm: build stage with the -dev packages, runtime stage with the libraries only.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config libh2o-evloop-dev libjwt-dev libhiredis-dev libqrencode-dev libssl-dev \
      libyaml-dev libjansson-dev zlib1g-dev libuv1-dev libwslay-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build/hegate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libh2o-evloop0.13 libjwt0 libhiredis0.14 libqrencode4 libssl3 libyaml-0-2 libjansson4 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/hegate --create-home --shell /usr/sbin/nologin hegate
COPY --from=build /src/build/hegate /usr/local/bin/hegate
COPY conf/hegate.yaml /etc/hegate/hegate.yaml
USER hegate
WORKDIR /var/lib/hegate
# public TLS, public cleartext (h2c), admin (bind it to the pod network only)
EXPOSE 8443 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hegate"]
CMD ["serve", "-c", "/etc/hegate/hegate.yaml"]
