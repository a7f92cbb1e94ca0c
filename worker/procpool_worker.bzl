"""procpool_worker_binary: a worker executable serving the tasks in `deps`.

Example (BUILD):
    load("//worker:procpool_worker.bzl", "procpool_worker_binary")
    procpool_worker_binary(
        name = "my_worker",
        deps = [":my_tasks"],  # procpool_task_library targets
    )
Then point Options::worker_binary at it (e.g. via a data dependency and
its runfiles path).
"""

def procpool_worker_binary(name, deps = [], **kwargs):
    """A cc_binary whose main() serves procpool workers for `deps`' tasks."""
    native.cc_binary(
        name = name,
        deps = deps + [Label("//worker:worker_main")],
        **kwargs
    )
