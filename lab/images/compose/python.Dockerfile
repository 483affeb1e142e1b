# Lab base image of the backend's compose image (stands in for python:3.12-slim, which the lab
# cannot pull): the lab's own Ubuntu 24.04 image with Python 3.12's venv module.
FROM textbook-lab/ubuntu:24.04
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.12-venv \
 && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.description="textbook lab: Ubuntu 24.04 + Python 3.12 venv (lab base of the backend image)"
