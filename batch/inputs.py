"""Which files a batch job reads: folders, globs and path lists, local or remote.

An input is a folder (searched recursively for image files), a glob (``photos/**/*.jpg``),
a ``.txt`` list (one path a line, ``#`` comments; relative paths are taken from the list's
folder), a ``.parquet`` list (its ``path`` column) or one file. A URI (``s3://…``,
``gs://…``, ``file://…``) is read through the filesystem pyarrow opens for it. Local paths
come back absolute, so Ray workers started elsewhere find them and a resumed job recognises
them; a named file that does not exist is kept, and becomes an error row.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from emotion_edge.runtime.errors import ConfigError
from emotion_edge.runtime.image import IMAGE_SUFFIXES, is_image_file

GLOB_CHARACTERS = frozenset("*?[")


def is_uri(path: str) -> bool:
    """True for ``scheme://…`` paths, which pyarrow's filesystems open."""
    return "://" in path


def remote_filesystem(uri: str):
    """The pyarrow filesystem of ``uri`` and the path inside it; ConfigError if none."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{uri}: no filesystem can open this URI ({exc})") from None


def find_inputs(inputs: Sequence[str]) -> list[str]:
    """Every file named by ``inputs``, in order, without duplicates.

    Raises ConfigError when an input is a folder or glob that cannot be listed, a list that
    cannot be read, or when nothing at all is found.
    """
    found: dict[str, None] = {}
    for item in inputs:
        found.update(dict.fromkeys(_expand(str(item))))
    if not found:
        raise ConfigError(f"no input files found in {', '.join(map(str, inputs))}")
    return list(found)


def _expand(item: str) -> list[str]:
    if item.lower().endswith(".txt") and not _is_dir(item):
        return _from_text_list(item)
    if item.lower().endswith(".parquet") and not _is_dir(item):
        return _from_parquet_list(item)
    if GLOB_CHARACTERS & set(item):
        return _from_glob(item)
    if _is_dir(item):
        images = _images_in_folder(item)
        if not images:
            raise ConfigError(f"{item}: no image files in this folder")
        return images
    return [item if is_uri(item) else str(Path(item).absolute())]


def _is_dir(item: str) -> bool:
    if not is_uri(item):
        return Path(item).is_dir()
    from pyarrow import fs

    filesystem, path = remote_filesystem(item)
    try:
        return filesystem.get_file_info(path).type == fs.FileType.Directory
    except OSError as exc:
        raise ConfigError(f"{item}: cannot be looked up ({exc})") from None


def _is_image(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


def _images_in_folder(item: str) -> list[str]:
    if not is_uri(item):
        return sorted(str(p.absolute()) for p in Path(item).rglob("*") if is_image_file(p))
    return sorted(uri for uri in _list_remote(item.rstrip("/")) if _is_image(uri))


def _list_remote(folder_uri: str) -> list[str]:
    """URIs of every file below a remote folder."""
    from pyarrow import fs

    filesystem, root = remote_filesystem(folder_uri)
    prefix = folder_uri[: len(folder_uri) - len(root)] if folder_uri.endswith(root) else (
        folder_uri.split("://", 1)[0] + "://")
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise ConfigError(f"{folder_uri}: cannot list this folder ({exc})") from None
    return [prefix + info.path for info in infos if info.type == fs.FileType.File]


def _from_glob(pattern: str) -> list[str]:
    if is_uri(pattern):
        import fnmatch

        base = pattern[: min(pattern.index(c) for c in GLOB_CHARACTERS if c in pattern)]
        folder = base.rsplit("/", 1)[0]
        matches = sorted(uri for uri in _list_remote(folder) if fnmatch.fnmatch(uri, pattern))
    else:
        matches = sorted(str(Path(p).absolute())
                         for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not matches:
        raise ConfigError(f"{pattern}: no file matches this pattern")
    return matches


def _read_text(item: str) -> str:
    try:
        if is_uri(item):
            filesystem, path = remote_filesystem(item)
            with filesystem.open_input_stream(path) as stream:
                return stream.read().decode("utf-8")
        return Path(item).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{item}: cannot read this list of paths ({exc})") from None


def _from_text_list(item: str) -> list[str]:
    lines = (line.strip() for line in _read_text(item).splitlines())
    return _relative_to(item, [line for line in lines if line and not line.startswith("#")])


def _from_parquet_list(item: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        if is_uri(item):
            filesystem, path = remote_filesystem(item)
            table = pq.read_table(path, filesystem=filesystem)
        else:
            table = pq.read_table(item)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{item}: cannot read this Parquet list of paths ({exc})") from None
    if "path" not in table.column_names:
        raise ConfigError(f"{item}: a Parquet list of paths needs a 'path' column; it has "
                          f"{', '.join(table.column_names)}")
    return _relative_to(item, [p for p in table.column("path").to_pylist() if p])


def _relative_to(list_file: str, paths: Iterable[str]) -> list[str]:
    """Resolve the relative paths of a list against the list's own folder."""
    if is_uri(list_file):
        folder = list_file.rsplit("/", 1)[0]
        return [p if is_uri(p) or p.startswith("/") else f"{folder}/{p}" for p in paths]
    folder = Path(list_file).absolute().parent
    return [p if is_uri(p) else str(folder / p) for p in paths]
