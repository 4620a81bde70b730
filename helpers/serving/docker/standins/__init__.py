"""Workarounds for machines without a registry or a Docker service, fenced off from the
docker backend proper (helpers.serving.docker), which reads without them.

images (local stand-ins for the compose file's images: `python -m
helpers.serving.docker.standins.images prepare`), rootfs (Debian base images made with
debootstrap), private_engine (a dockerd of our own where none runs: `python -m
helpers.serving.docker.standins.private_engine {start|status|stop}`).
"""
