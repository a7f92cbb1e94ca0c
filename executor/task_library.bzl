"""procpool_task_library: a cc_library of procpool tasks, kept at link time.

PROCPOOL_TASK registers a task from a static initializer; a plain cc_library
member that nothing references would be dropped by the linker and its tasks
would silently vanish from the worker. alwayslink keeps them.

Example (BUILD):
    load("//executor:task_library.bzl", "procpool_task_library")
    procpool_task_library(
        name = "my_tasks",
        srcs = ["my_tasks.cc"],
        hdrs = ["my_tasks.h"],
    )
"""

def procpool_task_library(name, deps = [], **kwargs):
    """A cc_library (same arguments) whose tasks always reach the binary."""
    native.cc_library(
        name = name,
        deps = deps + [Label("//executor")],
        alwayslink = True,
        **kwargs
    )
