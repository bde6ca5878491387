"""Image verbs, with docker's names and output: pull, images, rmi, tag, load, save, login,
logout, and `image ls|pull|inspect|history|rm|prune|fsck|tag|load|save`."""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import sys
from typing import Any

from corral.errors import ImageError

from .render import emit_json, for_each, table

# The image modules load when a command runs, not when `corral` starts: most of them pull
# in http.client, ssl, tarfile and threads, which cost tens of ms on every other verb.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from corral.image.store import Image, Store

ARCHIVE_FORMATS = ("docker-archive", "oci-archive")  # = corral.image.archive.FORMATS


def store_of(args: argparse.Namespace) -> Store:
    from corral.image.store import Store

    root = getattr(args, "data_root", None)
    return Store(os.path.join(root, "image") if root else None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _pull(sub.add_parser("pull", help="download an image from a registry"))
    _images(sub.add_parser("images", help="list images"))
    _rmi(sub.add_parser("rmi", help="remove images"))
    _tag(sub.add_parser("tag", help="give an image another name"))
    _load(sub.add_parser("load", help="load images from a docker-archive or OCI archive"))
    _save(sub.add_parser("save", help="save images to a docker-archive or OCI archive"))
    p = sub.add_parser("login", help="store credentials for a registry")
    p.add_argument("server")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--authfile")
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("logout", help="forget credentials for a registry")
    p.add_argument("server")
    p.add_argument("--authfile")
    p.set_defaults(func=cmd_logout)

    group = sub.add_parser("image", help="manage images (ls, pull, inspect, history, rm, ...)")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    _images(verbs.add_parser("ls", help="list images"))
    _pull(verbs.add_parser("pull", help="download an image from a registry"))
    _rmi(verbs.add_parser("rm", help="remove images"))
    _tag(verbs.add_parser("tag", help="give an image another name"))
    _load(verbs.add_parser("load", help="load images from an archive"))
    _save(verbs.add_parser("save", help="save images to an archive"))
    p = verbs.add_parser("inspect", help="show an image's details as JSON")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_inspect)
    p = verbs.add_parser("history", help="show the layers an image was built from")
    p.add_argument("image")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_history)
    p = verbs.add_parser("prune", help="remove dangling (or with -a all unused) images")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (never asks anyway)")
    p.set_defaults(func=cmd_prune)
    p = verbs.add_parser(
        "fsck", help="re-verify every blob's digest; report missing content and orphans"
    )
    p.add_argument("--repair", action="store_true", help="also remove orphans (garbage collect)")
    p.set_defaults(func=cmd_fsck)


def _pull(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    p.add_argument("--platform", help="os/arch[/variant] (default: the host's)")
    p.add_argument("--authfile", help="credentials file (docker config.json format)")
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain HTTP and unverified TLS for this registry (repeatable); "
        "localhost and 127.0.0.0/8 always are",
    )
    p.add_argument("--cert-dir", help="CA certificates as <dir>/<host>/*.crt")
    p.add_argument("-j", "--jobs", type=int, default=3, help="layers fetched at once (3)")
    p.set_defaults(func=cmd_pull)


def _images(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", help="only this repository")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("-a", "--all", action="store_true", help="accepted for docker compatibility")
    p.add_argument("--digests", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_images)


def _rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="untag even if containers use it")
    p.set_defaults(func=cmd_rmi)


def _tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE")
    p.add_argument("target", metavar="TARGET_IMAGE")
    p.set_defaults(func=cmd_tag)


def _load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", help="read from this file instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_load)


def _save(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--format", choices=ARCHIVE_FORMATS, default=ARCHIVE_FORMATS[0])
    p.set_defaults(func=cmd_save)


# ----- commands ----------------------------------------------------------------------------


def cmd_pull(args: argparse.Namespace) -> int:
    from corral.image import reference
    from corral.image.progress import for_stream
    from corral.image.pull import PullOptions, pull
    from corral.oci import image as spec

    options = PullOptions(
        platform=spec.parse_platform(args.platform) if args.platform else None,
        authfile=args.authfile,
        insecure=args.insecure_registry,
        certs_dir=args.cert_dir,
        jobs=args.jobs,
    )
    img = pull(store_of(args), args.image, for_stream(sys.stderr, args.quiet), options)
    name = reference.parse(args.image)
    print(name.familiar() if name.tag else f"{name.familiar()} ({img.short_id})")
    return 0


def _rows(store: Store, repository: str | None) -> list[tuple[str, str, str | None, Image]]:
    """(repository, tag, digest, image) per name; dangling images once with <none>."""
    from corral.image import reference

    want = reference.parse(repository, default_tag=False).name if repository else None
    rows: list[tuple[str, str, str | None, Image]] = []
    for img in store.images():
        digest = img.index_digest or img.manifest_digest
        names: list[str | None] = list(img.names) or [None]
        for name in names:
            if name:
                ref = reference.parse(name)
                repo, tag = ref.familiar().rsplit(":", 1)
                full = ref.name
            else:
                repo, tag = "<none>", "<none>"
                full = img.repository or ""
                if full:
                    repo = reference.parse(full, default_tag=False).familiar()
            if want and full != want:
                continue
            rows.append((repo, tag, digest, img))
    return rows


def cmd_images(args: argparse.Namespace) -> int:
    rows = _rows(store_of(args), args.repository)
    if args.quiet:
        seen: list[str] = []
        for *_, img in rows:
            ident = img.id if args.no_trunc else img.short_id
            if ident not in seen:
                seen.append(ident)
        print("\n".join(seen))
        return 0
    if args.format == "json":
        emit_json(
            [
                {
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": digest,
                    "ID": img.id,
                    "CreatedAt": img.created,
                    "Size": img.size,
                }
                for repo, tag, digest, img in rows
            ]
        )
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else [])
    headers += ["IMAGE ID", "CREATED", "SIZE"]
    out = []
    for repo, tag, digest, img in rows:
        row: list[object] = [repo, tag] + ([digest] if args.digests else [])
        row += [img.id if args.no_trunc else img.short_id, ago(img.created), human(img.size)]
        out.append(row)
    print(table(headers, out))
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    store = store_of(args)
    return for_each(args.images, lambda name: store.remove(name, force=args.force))


def cmd_tag(args: argparse.Namespace) -> int:
    store_of(args).tag(args.source, args.target)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from corral.image import archive
    from corral.image.progress import for_stream

    store = store_of(args)
    progress = for_stream(sys.stderr, True)
    if args.input:
        with open(args.input, "rb") as f:
            lines = archive.load(store, f, progress)
    else:
        if sys.stdin.isatty():
            raise ImageError("load: no input (use -i FILE or redirect an archive to stdin)")
        lines = archive.load(store, sys.stdin.buffer, progress)
    if not args.quiet:
        print("\n".join(lines))
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    from corral.image import archive

    store = store_of(args)
    if args.output:
        tmp = f"{args.output}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                archive.save(store, args.images, f, args.format)
            os.rename(tmp, args.output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return 0
    if sys.stdout.isatty():
        raise ImageError("save: refusing to write an archive to a terminal (use -o FILE)")
    archive.save(store, args.images, sys.stdout.buffer, args.format)
    return 0


def inspect_doc(img: Image) -> dict[str, Any]:
    """The fields of `docker image inspect` that scripts read."""
    from corral.image import reference

    config = img.config
    repo_digests = []
    if img.repository:
        repo = reference.parse(img.repository, default_tag=False)
        repo_digests.append(f"{repo.familiar()}@{img.index_digest or img.manifest_digest}")
    return {
        "Id": img.id,
        "RepoTags": [reference.parse(n).familiar() for n in img.names],
        "RepoDigests": repo_digests,
        "Created": config.get("created"),
        "Author": config.get("author", ""),
        "Architecture": config.get("architecture"),
        "Variant": config.get("variant"),
        "Os": config.get("os"),
        "Size": img.size,
        "Config": config.get("config") or {},
        "RootFS": {"Type": "layers", "Layers": img.diff_ids},
        "Metadata": {"LastTagTime": img.pulled},
        "Descriptor": {"digest": img.manifest_digest, "mediaType": img.manifest.get("mediaType")},
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    store = store_of(args)
    emit_json([inspect_doc(store.image(name)) for name in args.images])
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    store = store_of(args)
    img = store.image(args.image)
    history = img.config.get("history") or [{} for _ in img.diff_ids]
    layers = iter(zip(img.diff_ids, img.layers, strict=True))
    rows = []
    for entry in history:
        size = 0
        if not entry.get("empty_layer"):
            diff, _layer = next(layers, (None, None))
            size = store.layer_size(diff) if diff else 0
        rows.append((entry, size))
    rows.reverse()
    if args.quiet:
        print(img.short_id)
        return 0
    if args.format == "json":
        emit_json(
            [
                {
                    "Created": e.get("created"),
                    "CreatedBy": e.get("created_by", ""),
                    "Size": size,
                    "Comment": e.get("comment", ""),
                }
                for e, size in rows
            ]
        )
        return 0
    out = []
    for i, (entry, size) in enumerate(rows):
        by = entry.get("created_by", "")
        if not args.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        out.append(
            [
                img.short_id if i == 0 else "<missing>",
                ago(entry.get("created")),
                by,
                human(size),
                entry.get("comment", ""),
            ]
        )
    print(table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], out))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    deleted, reclaimed = store_of(args).prune(all_unused=args.all)
    if deleted:
        print("Deleted Images:")
        for image_id in deleted:
            print(f"deleted: {image_id}")
        print()
    print(f"Total reclaimed space: {human(reclaimed)}")
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    store = store_of(args)
    problems = store.fsck()
    for line in problems:
        print(line)
    if args.repair:
        reclaimed = store.collect()
        print(f"garbage collected: {human(reclaimed)}")
    serious = [p for p in problems if "orphan" not in p and "partial download" not in p]
    if not problems:
        print("store is consistent")
    return 1 if serious else 0


def cmd_login(args: argparse.Namespace) -> int:
    from corral.image import auth
    from corral.image.registry import Registry

    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = args.password or getpass.getpass("Password: ")
    creds = auth.Credentials(username, password)
    registry = Registry(args.server, credentials=creds, authfile=args.authfile)
    try:
        registry.ping()
    finally:
        registry.close()
    path = auth.store(args.server, creds, args.authfile)
    print(f"Login Succeeded (credentials saved in {path})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from corral.image import auth

    if auth.erase(args.server, args.authfile):
        print(f"Removed login credentials for {args.server}")
        return 0
    print(f"Not logged in to {args.server}")
    return 0


# ----- formatting --------------------------------------------------------------------------


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{n}B"


def ago(timestamp: str | None) -> str:
    if not timestamp:
        return "N/A"
    try:
        when = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    seconds = (datetime.datetime.now(datetime.UTC) - when).total_seconds()
    units = (
        ("year", 31536000),
        ("month", 2592000),
        ("week", 604800),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    )
    for unit, length in units:
        count = int(seconds // length)
        if count >= 2:
            return f"{count} {unit}s ago"
        if count == 1:
            return f"{'An' if unit == 'hour' else 'A'} {unit} ago"
    return "Less than a second ago"
