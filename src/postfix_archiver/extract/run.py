"""Extraction in the current process: the format chosen, its reader run, every failure made
an ``Extraction``. The worker process runs this; nothing else should, except to measure what
the isolation costs (``bench/extract.py``): a reader that hangs or eats memory here takes the
caller with it."""

from __future__ import annotations

import time

from . import FAILED, OK, TIMEOUT, TOO_BIG, UNSUPPORTED, Extraction, Limits
from .detect import HTML, MESSAGE, PDF, RTF, TEXT, ZIP, charset, kind
from .job import Failed, Full, Job, OutOfTime


def read(job: Job, data: bytes, content_type: str, filename: str, depth: int) -> bool:
    """Read one attachment (or a part inside one) into ``job``; False if it has no text."""
    found = kind(data, content_type, filename)
    if found is None:
        return False
    if len(data) > job.limits.max_input:
        raise Failed(f"larger than max_input ({job.limits.max_input} bytes): not read")
    if found == PDF:
        from .pdf import read_pdf

        read_pdf(data, job)
    elif found == ZIP:
        from .archive import read_zip

        read_zip(data, job, depth)
    elif found == MESSAGE:
        from .rfc822 import read_message

        read_message(data, job, depth, read)
    elif found == RTF:
        from .text import read_rtf

        read_rtf(data, job)
    elif found == HTML:
        from .text import read_html

        read_html(data, charset(content_type), job)
    elif found == TEXT:
        from .text import read_text

        read_text(data, charset(content_type), job)
    return True


def extract_here(
    data: bytes, content_type: str, filename: str, limits: Limits, deadline: float | None = None
) -> Extraction:
    """The text of one attachment, read in this process. Never raises."""
    if len(data) > limits.max_input:
        return Extraction(TOO_BIG, detail=f"larger than max_input ({limits.max_input} bytes)")
    job = Job(limits, time.monotonic() + limits.timeout if deadline is None else deadline)
    status = OK
    try:
        if not read(job, data, content_type, filename, 0):
            return Extraction(UNSUPPORTED)
    except Full:
        job.note(f"text cut at max_output ({limits.max_output} characters)")
    except Failed as exc:
        return Extraction(FAILED, detail=str(exc))
    except OutOfTime:
        status = TIMEOUT
        job.note(f"took longer than the timeout ({limits.timeout:g}s)")
    except MemoryError:
        return Extraction(FAILED, detail=f"out of memory (max_memory {limits.max_memory >> 20} MB)")
    except RecursionError:
        return Extraction(FAILED, detail="nested too deeply to read")
    except Exception as exc:  # a reader's corner case must not take the worker with it
        return Extraction(FAILED, detail=f"{type(exc).__name__}: {exc}"[:300])
    names = tuple(dict.fromkeys(job.names))
    return Extraction(status, job.text(), names, "; ".join(job.notes))
