"""Zip files: an Office or OpenDocument file is read for its text; any other zip file gives
the names of its members, and of the members of zip files inside it, within max_depth."""

from __future__ import annotations

import zipfile

from . import office, zips
from .detect import extension
from .job import Failed, Job

# members of one archive looked at: the central directory is read whole by zipfile, but
# nothing past this many members is listed or opened
MAX_MEMBERS = 10_000


def read_zip(data: bytes, job: Job, depth: int) -> None:
    zf = zips.open_zip(data)
    with zf:
        kind = office.document_kind(zf)
        if kind is not None:
            office.read_document(zf, kind, job)
            return
        _names(zf, job, depth)


def _names(zf: zipfile.ZipFile, job: Job, depth: int) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        job.note(f"a zip file of {len(infos)} members: only the first {MAX_MEMBERS} are listed")
    for info in infos[:MAX_MEMBERS]:
        name = zips.member_name(info)
        job.add_name(name)
        if info.is_dir() or extension(name) != "zip":
            continue
        if depth + 1 > job.limits.max_depth:
            job.note(f"archives nested deeper than {job.limits.max_depth} are not opened")
            continue
        try:
            inner_zip = zips.open_zip(zips.read(zf, info, job, job.limits.max_input))
        except Failed as exc:  # the other members' names are still worth listing
            job.note(f"{name}: {exc}")
            continue
        with inner_zip:
            _names(inner_zip, job, depth + 1)
