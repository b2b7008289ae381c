"""Every learned file the project uses: where it comes from, how it is checked, how it is loaded.

One :class:`FileSpec` per file says where it lives (a Hugging Face Hub repo + revision + path, or a
plain URL for face-alignment's weights), what it must be (size, sha256) and how to read it (a torch
pickle read with ``weights_only=True``, or safetensors). Nothing here ever unpickles without
``weights_only``: a file that asks to build anything but tensors and plain containers is refused.

* :func:`ensure` finds (and with ``download=True`` fetches) an engine's files and verifies them.
* :func:`load_state_dicts` returns ``{network_name: state_dict}`` ready for ``load_state_dict(strict=True)``;
  the LivePortrait stitching file is split into its three MLPs with the ``module.`` prefixes removed.
* :func:`status` tells cheaply, per engine, which files are missing (no hashing).
* :func:`prefetch` downloads everything (``python -m talking_head prefetch``) so that
  ``HF_HUB_OFFLINE=1`` works afterwards.

Hub files go to the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``), or to a plain folder given
as ``local_dir`` or in ``$LIVING_PORTRAITS_WEIGHTS``. face-alignment's files always go where
face-alignment looks for them: torch hub's ``checkpoints`` folder (``$TORCH_HOME/hub/checkpoints``).

What is verified and what is not: the sha256 and size of the four LivePortrait base models, and the
sha256 of the stitching file, are the Hub's LFS object ids (from ``shared/research/liveportrait.md``);
no Hub commit is pinned (revision ``main``: no commit id is known to us), the stitching file's exact
size is not known, and face-alignment publishes no digest — for those files we check that they load.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import CheckpointError

FIX = "python -m talking_head prefetch"
LIVEPORTRAIT_REPO = "KwaiVGI/LivePortrait"
ENGINES = ("liveportrait", "face_alignment")
STITCHING_PARTS = ("retarget_shoulder", "retarget_mouth", "retarget_eye")
STITCHING_NETWORK = "stitching_retargeting_module"


@dataclass(frozen=True)
class FileSpec:
    """One learned file.

    ``revision=None`` means the branch ``main`` (no commit pinned); ``sha256=None`` / ``size=None`` mean
    the value is not published or not known to us, and ``note`` says so.
    """

    engine: str                      # which engine (or landmark backend) needs it
    title: str                       # a few words for messages and the prefetch table
    filename: str                    # path inside the Hub repo, or the file name for a URL
    fmt: str = "torch"               # "torch" (pickle, read with weights_only=True) or "safetensors"
    layout: str = "state_dict"       # "state_dict" or "stitching" (dict of three sub state dicts)
    repo_id: str | None = None       # Hub repo; None for a URL file
    revision: str | None = None      # None = "main"
    url: str | None = None           # for files that are not on the Hub
    sha256: str | None = None
    size: int | None = None
    networks: tuple[str, ...] = ()   # network names this file provides
    note: str = ""

    @property
    def on_hub(self) -> bool:
        return self.repo_id is not None


def _lp(title: str, filename: str, network: str, sha256: str, size: int) -> FileSpec:
    return FileSpec("liveportrait", title, filename, repo_id=LIVEPORTRAIT_REPO, sha256=sha256, size=size,
                    networks=(network,), note="sha256 + size from the Hub's LFS record; revision not pinned")


SPECS: tuple[FileSpec, ...] = (
    _lp("LivePortrait appearance extractor", "liveportrait/base_models/appearance_feature_extractor.pth",
        "appearance_feature_extractor", "5279bb8654293dbdf327030b397f107237dd9212fb11dd75b83dfb635211ceb5", 3387959),
    _lp("LivePortrait motion extractor", "liveportrait/base_models/motion_extractor.pth",
        "motion_extractor", "251e6a94ad667a1d0c69526d292677165110ef7f0cf0f6d199f0e414e8aa0ca5", 112545506),
    _lp("LivePortrait warping network", "liveportrait/base_models/warping_module.pth",
        "warping_module", "2f61a6f265fe344f14132364859a78bdbbc2068577170693da57fb96d636e282", 182180086),
    _lp("LivePortrait SPADE decoder", "liveportrait/base_models/spade_generator.pth",
        "spade_generator", "4780afc7909a9f84e24c01d73b31a555ef651521a1fe3b2429bd04534d992aee", 221813590),
    FileSpec("liveportrait", "LivePortrait stitching/retargeting MLPs",
             "liveportrait/retargeting_models/stitching_retargeting_module.pth", layout="stitching",
             repo_id=LIVEPORTRAIT_REPO,
             sha256="3652d5a3f95099141a56986aaddec92fadf0a73c87a20fac9a2c07c32b28b611",
             networks=tuple(f"{STITCHING_NETWORK}.{p}" for p in STITCHING_PARTS),
             note="sha256 from the Hub's LFS record; exact size unknown (~2.39 MB); revision not pinned"),
    FileSpec("face_alignment", "face-alignment S3FD face detector", "s3fd-619a316812.pth",
             url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
             note="no published sha256 or size: checked by loading"),
    FileSpec("face_alignment", "face-alignment 2D-FAN-4 landmarks", "2DFAN4-11f355bf06.pth.tar",
             url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
             note="no published sha256 or size: checked by loading"),
)


def fix_command(spec: FileSpec) -> str:
    """The command that downloads ``spec`` again (optional engines are named, as prefetch skips them)."""
    return FIX + (f" --engines {spec.engine}" if spec.engine in OPTIONAL_ENGINES else "")


# Files prefetched only when asked (``prefetch --engines``): the few-shot model's repos are configurable
# and not published yet, so they are not part of what every kiosk downloads.
OPTIONAL_ENGINES = ("fewshot_content", "fewshot")


def specs(engine: str) -> tuple[FileSpec, ...]:
    """The files ``engine`` needs: ``liveportrait``, ``face_alignment``, or (configurable, see
    ``talking_head/fewshot/specs.py``) ``fewshot_content`` and ``fewshot``."""
    if engine == "fewshot_content":
        from .fewshot.specs import content_specs
        return content_specs()
    if engine == "fewshot":
        from .fewshot.specs import configured_model_repo, model_specs
        repo, revision = configured_model_repo()
        if repo is None:
            raise CheckpointError("No few-shot model is configured; set LIVING_PORTRAITS_FEWSHOT_REPO to its Hub repo "
                                  "(or LIVING_PORTRAITS_FEWSHOT_DIR to a trained model folder).")
        return model_specs(repo, revision)
    found = tuple(s for s in SPECS if s.engine == engine)
    if not found:
        raise CheckpointError(f"No learned files are known for the engine {engine!r}; known: "
                              f"{', '.join(ENGINES + OPTIONAL_ENGINES)}.")
    return found


# ----------------------------------------------------------------------------------------- where files live

def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expanduser(os.environ["HF_HOME"])) / "hub"
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def default_local_dir() -> Path | None:
    """A plain weights folder set with ``$LIVING_PORTRAITS_WEIGHTS`` (as filled by ``prefetch --local-dir``)."""
    v = os.environ.get("LIVING_PORTRAITS_WEIGHTS")
    return Path(os.path.expanduser(v)) if v else None


def torch_checkpoints_dir() -> Path:
    """Where face-alignment looks for its weights: torch hub's ``checkpoints`` folder."""
    if "torch" in sys.modules:  # it may have been moved with torch.hub.set_dir
        return Path(sys.modules["torch"].hub.get_dir()) / "checkpoints"
    return _torch_hub_dir_from_env() / "checkpoints"


def _torch_hub_dir_from_env() -> Path:
    """``torch.hub.get_dir()`` worked out as torch does, without importing torch (a second or more):
    every render asks the engine registry whether checkpoints are present."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (read now, from the environment or huggingface_hub) forbids the network."""
    from huggingface_hub import constants
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return env or bool(constants.HF_HUB_OFFLINE)


def _where(spec: FileSpec, local_dir: Path | None) -> str:
    if not spec.on_hub:
        return str(torch_checkpoints_dir())
    return str(local_dir) if local_dir else f"the Hugging Face cache ({hub_cache_dir()})"


def _missing(spec: FileSpec, local_dir: Path | None, why: str = "", reason: str = "missing") -> CheckpointError:
    src = f"{spec.filename} from {spec.repo_id}" if spec.on_hub else spec.filename
    why = why or ("HF_HUB_OFFLINE is set, so nothing was downloaded" if offline() else "")
    extra = f" ({why})" if why else ""
    return CheckpointError(f"The {spec.title} weights ({src}) are not in {_where(spec, local_dir)}{extra}; "
                           f"run `{fix_command(spec)}` on a machine with network.", spec=spec, reason=reason)


UNREACHABLE = "unreachable"  # a CheckpointError's reason: the download could not reach the Hub at all


def locate(spec: FileSpec, *, local_dir: Path | str | None = None, download: bool = False,
           force: bool = False) -> Path:
    """Path of ``spec``'s file, downloading it first when ``download`` (``force``: even if present).

    Hub files go through ``huggingface_hub.hf_hub_download`` (one file, never the whole repo).
    Raises :class:`CheckpointError` (reason ``missing``) when the file is not there and cannot be fetched.
    """
    local_dir = Path(local_dir) if local_dir else default_local_dir()
    if not spec.on_hub:
        return _locate_url(spec, download=download, force=force)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    kwargs = dict(revision=spec.revision or "main")
    if local_dir:
        kwargs["local_dir"] = str(local_dir)
    else:
        kwargs["cache_dir"] = str(hub_cache_dir())
    try:
        p = hf_hub_download(spec.repo_id, spec.filename, local_files_only=not download or offline(),
                            force_download=force and download and not offline(), **kwargs)
    except (HfHubHTTPError, OSError, ValueError) as e:  # network down, repo/file gone, disk full, not cached
        not_cached = isinstance(e, LocalEntryNotFoundError)
        # With no connection huggingface_hub raises LocalEntryNotFoundError after its retries; a forced
        # download wraps the connection error in a ValueError.
        if download and not offline() and (not_cached or _no_connection(e)):
            raise _missing(spec, local_dir, "the Hugging Face Hub could not be reached", UNREACHABLE) from e
        if not_cached:
            raise _missing(spec, local_dir) from None
        raise _missing(spec, local_dir, f"download failed: {_short(e)}") from e
    return Path(p)


def _no_connection(e: BaseException) -> bool:
    """Whether ``e``, or what it was raised from, is a failure to connect (name lookup, refused, timed out)."""
    import socket
    seen = 0
    while e is not None and seen < 8:
        name = type(e).__name__
        if isinstance(e, (ConnectionError, socket.gaierror, TimeoutError)) or "Connect" in name or "Timeout" in name:
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _locate_url(spec: FileSpec, *, download: bool, force: bool) -> Path:
    """A plain-URL file in torch hub's checkpoints folder, fetched there with torch's own downloader."""
    dest = torch_checkpoints_dir() / spec.filename
    if dest.is_file() and not force:
        return dest
    if not download or offline():
        raise _missing(spec, None)
    import torch
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    try:
        torch.hub.download_url_to_file(spec.url, str(tmp), progress=True)
        os.replace(tmp, dest)
    except Exception as e:  # URLError, HTTPError, OSError: report, do not crash the whole prefetch
        tmp.unlink(missing_ok=True)
        raise _missing(spec, None, f"download from {spec.url} failed: {_short(e)}") from e
    return dest


def _short(e: BaseException) -> str:
    """The first sentence of an exception's text, at most 160 characters, to quote inside our sentence."""
    text = " ".join(str(e).split()).split(". ")[0].rstrip(".") or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# ----------------------------------------------------------------------------------------- verification

def sha256_of(path: Path) -> str:
    """sha256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verify(spec: FileSpec, path: Path) -> None:
    """Check size and sha256 where the spec knows them; raise :class:`CheckpointError` otherwise."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        what = "incomplete" if size < spec.size else "larger than expected"
        raise CheckpointError(f"The {spec.title} weights file {path} is {what} ({size:,} of {spec.size:,} bytes); "
                              f"run `{fix_command(spec)}` to download it again.", spec=spec, reason="size")
    if size == 0:
        raise CheckpointError(f"The {spec.title} weights file {path} is empty; run `{fix_command(spec)}` to download it again.",
                              spec=spec, reason="size")
    if spec.sha256 is not None and sha256_of(path) != spec.sha256.lower():
        raise CheckpointError(f"The {spec.title} weights file {path} does not match its sha256 (corrupt, or a "
                              f"different version); run `{fix_command(spec)}` to download it again.", spec=spec, reason="sha256")


def read(spec: FileSpec, path: Path):
    """Read a verified file safely: safetensors, or ``torch.load(weights_only=True)`` on the CPU."""
    import torch
    try:
        if spec.fmt == "json":  # a model's configuration, not weights
            import json
            return json.loads(path.read_text(encoding="utf-8"))
        if spec.fmt == "safetensors":
            from safetensors.torch import load_file
            return load_file(str(path), device="cpu")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():  # a class or function the file wants to call
            raise CheckpointError(f"The {spec.title} weights file {path} holds objects other than tensors, and "
                                  f"loading it could run code, so it was refused; delete it and run `{fix_command(spec)}`.",
                                  spec=spec, reason="unsafe") from None
        raise _unreadable(spec, path, e) from None
    except Exception as e:  # zip/pickle/safetensors header errors: corrupt or truncated bytes
        raise _unreadable(spec, path, e) from None


def _unreadable(spec: FileSpec, path: Path, e: BaseException) -> CheckpointError:
    return CheckpointError(f"The {spec.title} weights file {path} is corrupt or incomplete ({_short(e)}); "
                           f"run `{fix_command(spec)}` to download it again.", spec=spec, reason="unreadable")


# ----------------------------------------------------------------------------------------- state dicts

def strip_module_prefix(sd: dict) -> dict:
    """Remove DDP's ``module.`` from every key, as the official loader does (``key.replace('module.', '')``)."""
    return {k.replace("module.", ""): v for k, v in sd.items()}


def split_stitching(ckpt, spec: FileSpec | None = None, path: Path | None = None) -> dict[str, dict]:
    """The stitching file's three MLPs as ``{network_name: clean state_dict}``; other content is ignored."""
    spec = spec or next(s for s in SPECS if s.layout == "stitching")
    missing = [p for p in STITCHING_PARTS if not isinstance(ckpt, dict) or not isinstance(ckpt.get(p), dict)]
    if missing:
        raise CheckpointError(f"The {spec.title} weights file {path or spec.filename} lacks {', '.join(missing)}; "
                              f"run `{fix_command(spec)}` to download it again.", spec=spec, reason="layout")
    return {f"{STITCHING_NETWORK}.{p}": _tensors_only(spec, path, strip_module_prefix(ckpt[p])) for p in STITCHING_PARTS}


def _tensors_only(spec: FileSpec, path: Path | None, sd) -> dict:
    import torch
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"The {spec.title} weights file {path or spec.filename} is not a state dict of "
                              f"tensors; run `{fix_command(spec)}` to download it again.", spec=spec, reason="layout")
    return dict(sd)


def state_dicts_from(spec: FileSpec, path: Path) -> dict[str, dict]:
    """Read one verified file into ``{network_name: state_dict}``."""
    obj = read(spec, path)
    if spec.layout == "stitching":
        return split_stitching(obj, spec, path)
    return {spec.networks[0]: _tensors_only(spec, path, obj)}


def ensure(engine: str = "liveportrait", *, local_dir: Path | str | None = None, download: bool = False,
           file_specs: Iterable[FileSpec] | None = None) -> dict[str, Path]:
    """Find and verify every file ``engine`` needs; ``{filename: path}``. Raises on the first bad one."""
    out = {}
    for spec in (tuple(file_specs) if file_specs is not None else specs(engine)):
        path = locate(spec, local_dir=local_dir, download=download)
        verify(spec, path)
        out[spec.filename] = path
    return out


def load_state_dicts(engine: str = "liveportrait", *, local_dir: Path | str | None = None, download: bool = False,
                     file_specs: Iterable[FileSpec] | None = None) -> dict[str, dict]:
    """``{network_name: state_dict}`` for ``engine``, from verified files, loaded safely on the CPU.

    LivePortrait's names are those of ``shared/refcheck``: ``appearance_feature_extractor``,
    ``motion_extractor``, ``warping_module``, ``spade_generator`` and
    ``stitching_retargeting_module.retarget_{shoulder,mouth,eye}``.
    """
    chosen = tuple(file_specs) if file_specs is not None else specs(engine)
    paths = ensure(engine, local_dir=local_dir, download=download, file_specs=chosen)
    out: dict[str, dict] = {}
    for spec in chosen:
        out.update(state_dicts_from(spec, paths[spec.filename]))
    return out


# ----------------------------------------------------------------------------------------- status + prefetch

def _present(spec: FileSpec, local_dir: Path | None) -> Path | None:
    """The file's path if it is there (no download, no hashing), else None."""
    if not spec.on_hub:
        p = torch_checkpoints_dir() / spec.filename
        return p if p.is_file() else None
    if local_dir:
        p = local_dir / spec.filename
        return p if p.is_file() else None
    from huggingface_hub import try_to_load_from_cache
    found = try_to_load_from_cache(spec.repo_id, spec.filename, cache_dir=str(hub_cache_dir()),
                                   revision=spec.revision or "main")
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def status(local_dir: Path | str | None = None) -> dict[str, list[str]]:
    """Per engine, the files that are missing or of the wrong size (cheap: no hashing). Empty list = ready."""
    local_dir = Path(local_dir) if local_dir else default_local_dir()
    out: dict[str, list[str]] = {e: [] for e in ENGINES}
    for spec in SPECS:
        p = _present(spec, local_dir)
        if p is None:
            out[spec.engine].append(f"{spec.filename} missing")
        elif spec.size is not None and p.stat().st_size != spec.size:
            out[spec.engine].append(f"{spec.filename} incomplete")
    return out


@dataclass
class PrefetchRow:
    spec: FileSpec
    ok: bool
    message: str
    path: Path | None = None
    details: dict = field(default_factory=dict)


def prefetch_one(spec: FileSpec, *, local_dir: Path | None = None, download: bool = True) -> PrefetchRow:
    """Make one file present and valid: keep a good copy, download a missing one, replace a bad one (the
    last two only with ``download``)."""
    fetched = False
    try:
        try:
            path = locate(spec, local_dir=local_dir)
            verify(spec, path)
            read(spec, path)
        except CheckpointError as e:
            if offline() or not download:
                raise
            path = locate(spec, local_dir=local_dir, download=True, force=e.reason != "missing")
            fetched = True
            verify(spec, path)
            read(spec, path)
    except CheckpointError as e:
        return PrefetchRow(spec, False, str(e), details={"reason": e.reason})
    checked = "sha256 ok" if spec.sha256 else "loads (no published sha256)"
    return PrefetchRow(spec, True, f"{'downloaded' if fetched else 'ready'}, {checked}", path)


def prefetch(local_dir: Path | str | None = None, engines: Iterable[str] = ENGINES,
             report: Callable[[PrefetchRow], None] | None = None) -> list[PrefetchRow]:
    """Download and check every file of ``engines``; one row per file (failures are rows, not exceptions).

    Once the Hub could not be reached, the later Hub files are only looked for where they are kept: each
    attempt took huggingface_hub about 25 s of retries, two minutes for nothing on a machine offline."""
    local_dir = Path(local_dir) if local_dir else default_local_dir()
    rows = []
    hub_reached = True
    for engine in engines:
        for spec in specs(engine):
            row = prefetch_one(spec, local_dir=local_dir, download=hub_reached or not spec.on_hub)
            if spec.on_hub and row.details.get("reason") == UNREACHABLE:
                hub_reached = False
            elif spec.on_hub and not hub_reached and row.details.get("reason") == "missing":
                why = "not downloaded: the Hugging Face Hub could not be reached for an earlier file"
                row = PrefetchRow(spec, False, str(_missing(spec, local_dir, why)), details={"reason": UNREACHABLE})
            rows.append(row)
            if report:
                report(row)
    return rows


def format_row(row: PrefetchRow) -> str:
    """One line of the prefetch table: engine, file, size, state."""
    size = f"{row.path.stat().st_size / 1e6:8.1f} MB" if row.ok and row.path else " " * 11
    state = row.message if row.ok else "NOT READY: " + row.message
    return f"{row.spec.engine:15s} {Path(row.spec.filename).name:42s} {size}  {state}"
