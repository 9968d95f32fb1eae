"""Run one command; print its wall seconds, its peak resident memory in KB and its exit status.

benchmarks/export.py starts every measured process through this small one. On Linux a child
forked from a process inherits that process's memory high-water mark as its own peak
(`ru_maxrss`): started straight from the benchmark, which holds a large workbook, every child
would read at least the benchmark's own peak. Spawned from here, the floor is this process's
few MB. The command's standard output is thrown away; its standard error is passed through.

    python benchmarks/timed_run.py /path/to/program ARG ...
"""

import os
import sys
import time


def main():
    command = sys.argv[1:]
    quiet = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter()
    pid = os.posix_spawn(command[0], command, os.environ, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    print(seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
