# The Qdrant LAB STAND-IN as an image (NOT Qdrant): labstandins/qdrant served from a venv.
# The real image cannot be pulled in the lab; production runs Qdrant's own image by digest.
# Started like Qdrant's image; the backend role mounts its settings at /qdrant/config/local.yaml.
FROM textbook-lab/python:3.12-noble
ADD qdrant-labstandin-wheels.tar /tmp/wheels/
COPY qdrant_labstandin.py /usr/local/bin/qdrant
RUN python3 -m venv /opt/qdrant-labstandin/venv \
 && /opt/qdrant-labstandin/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
      --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
 && rm -rf /tmp/wheels \
 && chmod 0755 /usr/local/bin/qdrant \
 && useradd --system --uid 999 --home-dir /qdrant --shell /usr/sbin/nologin qdrant \
 && install -d -o qdrant -g qdrant /qdrant/storage /qdrant/snapshots /qdrant/config
LABEL org.opencontainers.image.description="Qdrant LAB STAND-IN, NOT Qdrant (labstandins/qdrant on Qdrant Edge)"
USER qdrant
WORKDIR /qdrant
CMD ["qdrant", "--config-path", "/qdrant/config/local.yaml"]
