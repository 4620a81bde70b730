"""The docker backend: docker-compose.yaml behind the same `Stack` protocol as the local one."""
