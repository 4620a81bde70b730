"""The local backend (the default): the three services as processes on 127.0.0.1, each in its
own cgroup limited like a container.

stack (`LocalStack`, `start_local_stack`), record (its stack.json), limits (the run's cgroups
and their limits read back), cgroups (create, join before exec) + cgroup_stats (read) +
cgroup_removal (remove, also what a killed run left), exporter (cgroups under cAdvisor's
metric names; the docker backend reuses it where cAdvisor cannot run).
"""
