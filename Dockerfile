# dcim: data hall monitoring daemon. Build: docker build -t dcim .
# Run:   docker run -v /etc/dcim:/etc/dcim:ro -v dcim-state:/var/lib/dcim -p 9860:9860 dcim
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dcim ./dcim
COPY collectors ./collectors
RUN python -m venv /opt/dcim \
 && /opt/dcim/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="dcim" \
      org.opencontainers.image.description="PUE, rack power and liquid cooling monitoring for AI/HPC data halls"
COPY --from=build /opt/dcim /opt/dcim
RUN useradd --system --uid 10001 --home-dir /var/lib/dcim --shell /usr/sbin/nologin dcim \
 && mkdir -p /var/lib/dcim /etc/dcim \
 && chown dcim:dcim /var/lib/dcim
ENV PATH=/opt/dcim/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STATE_DIRECTORY=/var/lib/dcim
USER 10001:10001
VOLUME ["/var/lib/dcim"]
EXPOSE 9860
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9860/-/healthy', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["dcim"]
CMD ["run", "--config", "/etc/dcim/site.yaml", "--listen", "0.0.0.0:9860"]
