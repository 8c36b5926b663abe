"""The extraction process: reads requests on stdin, answers on stdout, one at a time.

Started by ``process.Worker`` with its memory limit as the only argument. It imports only
what it needs (the readers load their libraries on first use), limits its own address space
(RLIMIT_AS, which pdftotext inherits), its CPU time per request (RLIMIT_CPU, a backstop should
the caller die), and leaves core dumps off. Whatever a reader prints goes to /dev/null: the
answers have the real stdout to themselves.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import BinaryIO

from . import Limits
from .protocol import EXIT_OUT_OF_MEMORY, REQUEST_HEAD, answer
from .run import extract_here


def _limit(max_memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # background work: the proxy and the web answering people come first
    os.nice(10)


def _cpu_budget(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(used + seconds) + 2
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    read = requests.read
    while True:
        head = read(REQUEST_HEAD.size)
        if len(head) < REQUEST_HEAD.size:
            return  # the caller is done
        header_size, data_size = REQUEST_HEAD.unpack(head)
        header = json.loads(read(header_size))
        started = time.monotonic()
        data = read(data_size)
        if len(data) < data_size:
            return
        limits = Limits(*header["limits"])
        _cpu_budget(limits.timeout)
        result = extract_here(
            data,
            header["content_type"],
            header["filename"],
            limits,
            started + float(header["budget"]),
        )
        del data
        answers.write(answer(result))
        answers.flush()


def main() -> None:
    _limit(int(sys.argv[1]))
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        serve(sys.stdin.buffer, answers)
    except MemoryError:
        # reading the request or writing the answer: the stream is out of step now, so
        # say so by the exit status alone (the caller turns it into FAILED)
        os._exit(EXIT_OUT_OF_MEMORY)


if __name__ == "__main__":
    main()
