"""The process runtime of specman's services (``serve``, ``console``): running granian, TLS material, the
certificate watcher, the run directory shared with the workers, metrics, and the supervisor that owns a service
process from start to stop.

It sits beside the CLI, above the library packages: it may import them, they never import it.
"""
