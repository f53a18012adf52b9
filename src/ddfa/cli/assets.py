"""``ddfa assets list|fetch``: what model files are present, missing or corrupt; download them."""

from __future__ import annotations

import argparse

from ..assets.registry import BFM_LICENCE_NOTE, GROUPS, KNOWN_FILES


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "assets",
        help="list, check and download model files",
        description="Model files live under an asset directory (--assets DIR, else $DDFA_HOME, else "
        "~/.cache/ddfa/assets) at their upstream paths (3DDFA/..., 3DDFA_V2/...). " + BFM_LICENCE_NOTE,
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    lister = sub.add_parser("list", help="show every known file: ok, missing, corrupt or unverified")
    lister.add_argument("--assets", metavar="DIR", default=None, help="asset directory (default: $DDFA_HOME)")
    lister.add_argument("--group", choices=sorted(GROUPS), help="only this group of files")
    lister.set_defaults(func=run_list)
    fetch = sub.add_parser("fetch", help="download missing or corrupt files (needs a network)")
    fetch.add_argument("--assets", metavar="DIR", default=None, help="asset directory to fill (default: $DDFA_HOME)")
    fetch.add_argument("--group", action="append", choices=sorted(GROUPS),
                       help="only these groups (repeatable; default: all pinned files)")
    fetch.add_argument("--allow-unpinned", action="store_true",
                       help="also download files that have no pinned checksum (mb1, 3DDFA v1 weights)")
    fetch.set_defaults(func=run_fetch)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    return parser


def run_list(args) -> int:
    from ..assets.store import AssetStore

    store = AssetStore(args.assets)
    print(f"asset directory: {store.root}")
    rows = [(k, store.status(k)) for k, f in KNOWN_FILES.items() if args.group in (None, f.group)]
    width = max(len(path) for path, _ in rows)
    for path, status in rows:
        known = KNOWN_FILES[path]
        note = " [BFM, non-commercial]" if known.bfm else (f" [{known.licence}]" if known.licence else "")
        print(f"  {status:<10} {path:<{width}}  {known.group:<9} {known.description}{note}")
    counts = {s: sum(1 for _, st in rows if st == s) for s in ("ok", "missing", "corrupt", "unverified")}
    print("summary: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    print(BFM_LICENCE_NOTE)
    return 1 if counts["corrupt"] else 0


def run_fetch(args) -> int:
    from ..assets.fetch import fetch
    from ..assets.store import AssetStore

    store = AssetStore(args.assets)
    paths = None
    if args.group:
        paths = [p for g in args.group for p in GROUPS[g]]
        if not args.allow_unpinned:
            paths = [p for p in paths if KNOWN_FILES[p].sha256 is not None]
    print(f"fetching into {store.root}")
    report = fetch(store, paths, allow_unpinned=args.allow_unpinned)
    for path, result in report.items():
        print(f"  {result.split(':')[0]:<10} {path}" + (f"  ({result[8:]})" if result.startswith("failed") else ""))
    failed = sum(1 for r in report.values() if r.startswith("failed"))
    print(f"{len(report) - failed} ok, {failed} failed. {BFM_LICENCE_NOTE}")
    return 1 if failed else 0
