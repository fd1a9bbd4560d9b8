#!/usr/bin/env python3
# Writes the seeds of the `layer` target into seeds/layer/: small tars of
# the shapes that broke other clients' layer walkers. Several layers in one
# seed are joined by the target's separator. Rerun after changing; the
# output is deterministic (fixed times, owners and order).
import gzip
import io
import os
import tarfile

SEP = b"%%ferry-layer%%"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "layer")


def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, kind, data_or_target[, pax headers])."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            name, kind, arg = e[:3]
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            info.mode = 0o755 if kind in ("dir", "sym") else 0o644
            if len(e) > 3:
                info.pax_headers = e[3]
            data = None
            if kind == "file":
                info.size = len(arg)
                data = io.BytesIO(arg)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = arg
            elif kind == "hard":
                info.type = tarfile.LNKTYPE
                info.linkname = arg
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            t.addfile(info, data)
    # tarfile pads to 10 KiB records; keep only the two zero end blocks.
    body = buf.getvalue().rstrip(b"\0")
    body += b"\0" * (-len(body) % 512)
    return body + b"\0" * 1024


SEEDS = {
    "plain": [tar([("etc", "dir", None), ("etc/passwd", "file", b"root:x:0:0\n"),
                   ("bin", "dir", None), ("bin/sh", "file", b"#!sh\n"),
                   ("usr/bin/env", "file", b"env")])],
    "dotdot": [tar([("../canary", "file", b"pwned"), ("a/../../x", "file", b"x")])],
    "absolute": [tar([("/etc/x", "file", b"x"), ("/", "dir", None), ("./a", "file", b"a")])],
    "symlink-then-file": [tar([("l", "sym", ".."), ("l/canary", "file", b"pwned")])],
    "symlink-two-layers": [tar([("d", "dir", None), ("d/l", "sym", "../..")]),
                           tar([("d/l/outside/canary", "file", b"pwned")])],
    "symlink-absolute": [tar([("l", "sym", "/tmp")]), tar([("l/x", "file", b"x")])],
    "hardlink-outside": [tar([("x", "hard", "../outside/canary"),
                              ("y", "hard", "/etc/passwd")])],
    "hardlink-through-symlink": [tar([("l", "sym", ".."), ("x", "hard", "l/outside/canary"),
                                      ("f", "file", b"f"), ("g", "hard", "f")])],
    "whiteouts": [tar([("a", "dir", None), ("a/1", "file", b"1"), ("a/2", "file", b"2"),
                       ("l", "sym", "..")]),
                  tar([("a/.wh.1", "file", b""), ("l/.wh.outside", "file", b""),
                       (".wh...", "file", b""), ("a/.wh..wh.plnk", "file", b"")])],
    "opaque": [tar([("b", "dir", None), ("b/k", "file", b"k"), ("b/d", "dir", None),
                    ("b/d/z", "file", b"z")]),
               tar([("b/new", "file", b"n"), ("b/.wh..wh..opq", "file", b""),
                    ("b/d/.wh..wh..opq", "file", b"")])],
    "replace": [tar([("a", "file", b"file"), ("b", "dir", None), ("b/x", "file", b"x"),
                     ("c", "sym", "..")]),
                tar([("a", "dir", None), ("b", "sym", "a"), ("c", "dir", None),
                     ("c/y", "file", b"y")])],
    "long-names": [tar([("d" * 99 + "/" + "e" * 120, "file", b"long"),
                        ("l", "sym", "../" * 40 + "x"),
                        ("h" * 150, "hard", "d" * 99 + "/" + "e" * 120)])],
    "pax": [tar([("pax", "file", b"p", {"path": "../canary"}),
                 ("pax2", "sym", "", {"linkpath": "../..", "path": "ok"}),
                 ("ok/x", "file", b"x")], fmt=tarfile.PAX_FORMAT)],
    "modes": [tar([("ro", "dir", None), ("ro/f", "file", b"f"), ("fifo", "fifo", None)])],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, layers in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(SEP.join(layers))
    # One gzip layer: its entries are applied, then the diff_id fails.
    gz = gzip.compress(SEEDS["symlink-then-file"][0], mtime=0)
    with open(os.path.join(OUT, "gzip"), "wb") as f:
        f.write(gz)


if __name__ == "__main__":
    main()
