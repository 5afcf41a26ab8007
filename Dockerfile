# syntax=docker/dockerfile:1
# moeserve in a container: Debian 12, multi-stage, runs as a non-root user.
#
#   docker build -t moeserve .
#   docker run --rm -p 8080:8080 moeserve                       # the bundled model
#   docker run --rm -p 8080:8080 -v /models:/models:ro moeserve \
#     serve --host 0.0.0.0 -m /models/mixtral.Q4_K_M.gguf --state postgresql://...
#
# The build stage configures and builds exactly as scripts/build.sh does
# (CMake, Release, ./build), without the tests and benchmarks. See docs/DEPLOY.md.

# ---- build ------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libsentencepiece-dev nlohmann-json3-dev libcli11-dev libboost-dev \
      libsqlite3-dev libpq-dev libcurl4-openssl-dev libtomlplusplus-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMOESERVE_BUILD_TESTS=OFF -DMOESERVE_BUILD_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target moeserve \
 && strip build/tools/moeserve

# ---- run --------------------------------------------------------------------
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsentencepiece0 libsqlite3-0 libpq5 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 moeserve \
 && useradd --system --uid 10001 --gid moeserve --home-dir /var/lib/moeserve --create-home --shell /usr/sbin/nologin moeserve
COPY --from=build /src/build/tools/moeserve /usr/local/bin/moeserve
COPY --from=build /src/models/tiny-mixtral-kjv /opt/moeserve/models/tiny-mixtral-kjv
USER 10001:10001
WORKDIR /var/lib/moeserve
EXPOSE 8080
# SIGTERM drains: /health turns 503, in-flight requests finish (--drain-timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/moeserve"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "-m", "/opt/moeserve/models/tiny-mixtral-kjv", "--drain-timeout", "25"]
