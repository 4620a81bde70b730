"""The docker backend: docker-compose.yaml behind the same `Stack` protocol as the local one.

stack (`DockerStack`, `start_docker_stack`), record (its stack.json), compose (the compose
CLI), topology (which services run here and Prometheus' targets), containers (limits read
back, exits watched, k6 in a container), choice (which image each variable uses, and why),
engine (a running Docker engine, borrowed); standins/ the workarounds for machines without a
registry or a Docker service.
"""
