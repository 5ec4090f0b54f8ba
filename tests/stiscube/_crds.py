"""``crds certify`` offline on STIS reference files, against the real rmaps (test helper).

A local CRDS cache holds the real STIS rmaps and a two-line pipeline and instrument
mapping that point to them; ``CRDS_SERVER_URL`` is unset, so nothing is fetched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: CRDS type -> the real rmap certify checks a file of that type against
RMAPS = {"darkfile": "hst_stis_darkfile.rmap", "bpixtab": "hst_stis_bpixtab.rmap"}


def offline_certifier(cache: Path, rmap_dir: Path, monkeypatch):
    """A function ``certify(path) -> number of errors crds certify logged`` for the files
    of the types in :data:`RMAPS`, with a CRDS cache in *cache* (a new directory)."""
    mappings = cache / "mappings" / "hst"
    mappings.mkdir(parents=True)
    for name in RMAPS.values():
        shutil.copy(rmap_dir / name, mappings)
    (mappings / "hst_0001.pmap").write_text(
        "header = {\n    'derived_from' : 'stiscube test',\n    'mapping' : 'PIPELINE',\n"
        "    'name' : 'hst_0001.pmap',\n    'observatory' : 'HST',\n"
        "    'parkey' : ('INSTRUME',),\n    'sha1sum' : '0',\n}\n\n"
        "selector = {\n    'STIS' : 'hst_stis_0001.imap',\n}\n"
    )
    selector = "".join(f"    '{kind}' : '{name}',\n" for kind, name in RMAPS.items())
    (mappings / "hst_stis_0001.imap").write_text(
        "header = {\n    'derived_from' : 'stiscube test',\n    'instrument' : 'STIS',\n"
        "    'mapping' : 'INSTRUMENT',\n    'name' : 'hst_stis_0001.imap',\n"
        "    'observatory' : 'HST',\n    'parkey' : ('REFTYPE',),\n    'sha1sum' : '0',\n}\n\n"
        f"selector = {{\n{selector}}}\n"
    )
    monkeypatch.delenv("CRDS_SERVER_URL", raising=False)
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_OBSERVATORY", "hst")
    from crds.certify import certify
    from crds.core import log
    from crds.refactoring import checksum

    for name in ("hst_0001.pmap", "hst_stis_0001.imap"):
        checksum.update_checksum(str(mappings / name))

    def run(path: Path) -> int:
        before = log.errors()
        certify.certify_file(str(Path(path).resolve()), context="hst_0001.pmap", observatory="hst")
        return log.errors() - before

    return run
