"""The cache's build lock: :func:`csmoe_common.processes.exclusive_lock`.

A POSIX record lock (``fcntl.lockf``) on ``<cache_dir>/.<key>.lock``: the kernel releases it when
its holder exits or is killed, forked decoding workers do not inherit it (a ``flock`` lock was
shared with them, so orphaned workers of a killed build kept it and every later run waited
forever), and a run that has to wait says which process it waits for.
"""

from csmoe_common.processes import exclusive_lock

__all__ = ["exclusive_lock"]
